"""Shared pytest configuration."""


def pytest_configure(config):
    """Register the ``notebook`` marker: tests that execute a notebook in a Jupyter kernel."""
    config.addinivalue_line(
        "markers",
        "notebook: executes a notebook in a Jupyter kernel (slow; deselect with -m 'not notebook')",
    )
