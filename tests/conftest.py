"""Shared pytest configuration."""


def pytest_configure(config):
    """Register the ``notebook`` marker: tests that execute a notebook in a Jupyter kernel."""
    config.addinivalue_line(
        "markers",
        "notebook: executes a notebook in a Jupyter kernel (slow; deselect with -m 'not notebook')",
    )


import os  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def redis_url():
    """A Redis for the tests: ``WORKSHOP_TEST_REDIS_URL`` if set, else Debian's ``redis-server``
    started on a free port for this session (skipped where it is not installed, except under CI,
    where ``.ci/run`` installs it)."""
    if os.environ.get("WORKSHOP_TEST_REDIS_URL"):
        yield os.environ["WORKSHOP_TEST_REDIS_URL"]
        return
    from workshop.servers.redis import RedisServer, redis_binary

    if redis_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server not installed (CI must have it: .ci/run installs it)")
        pytest.skip("redis-server not installed")
    with RedisServer() as server:
        yield server.url
