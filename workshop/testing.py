"""pytest fixtures for testing streaming agents offline (loaded with ``-p workshop.testing``).

``emulator``: a Gemini emulator with zero pacing, reset for each test, and the environment
pointing google-genai (and so ADK) at it. Script a test's scenario with
``emulator.script(Reply(...))`` or ``emulator.arm_fault("503")``; read what the model was
asked in ``emulator.requests``.

``reference_server``: the reference SSE server (``reference_server``) under real
uvicorn on a free loopback port, talking to that emulator (tokens in ``REFERENCE_TOKENS``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .gemini_emulator import EmulatorHandle, start_emulator


# [snippet: pytest-emulator-fixture]
@pytest.fixture(scope="session")
def gemini_emulator_session() -> Iterator[EmulatorHandle]:
    with start_emulator(first_token_s=0, chunk_s=0) as handle:
        yield handle


@pytest.fixture
def emulator(gemini_emulator_session: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    handle = gemini_emulator_session
    handle.reset()
    handle.set_pacing(first_token_s=0, chunk_s=0, words_per_chunk=1)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", handle.url)
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    return handle
# [end snippet]


# -- the reference SSE server (reference_server) under real uvicorn ------------------
REFERENCE_TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}  # token -> user, for tests only


@pytest.fixture
def reference_server(emulator: EmulatorHandle):
    """The reference server's app under real uvicorn on a free loopback port, on a background
    thread, pointed at the ``emulator`` fixture; stopped (port freed) after the test.

    Yields a ``BackgroundServer``: ``.url``, ``.app`` (``app.state.settings``,
    ``app.state.runner``), ``.errors`` (what uvicorn logged as errors). Tokens: ``tok-alice``
    (user ``alice``) and ``tok-bob`` (user ``bob``), as in ``REFERENCE_TOKENS``.
    """
    from reference_server import Settings, create_app
    from workshop.servers import BackgroundServer

    app = create_app(Settings(tokens=dict(REFERENCE_TOKENS), database_url="memory://"))
    with BackgroundServer(app) as server:
        yield server


def postgres_url() -> str:
    """The test PostgreSQL database's URL, or skip (fail under CI, where .ci/run provides it)."""
    import asyncio
    import os

    from reference_server.persistence import prepare_database

    url = os.environ.get("WORKSHOP_TEST_DATABASE_URL", "").strip()
    if url:
        asyncio.run(prepare_database(url))  # workers and fresh processes must not race to create tables
        return url
    if os.environ.get("CI"):
        pytest.fail("CI is set but WORKSHOP_TEST_DATABASE_URL is not: .ci/run starts PostgreSQL "
                    "and exports it")
    pytest.skip("PostgreSQL path: set WORKSHOP_TEST_DATABASE_URL=postgresql://user:pw@127.0.0.1/db "
                "(.ci/run does)")


def require_nginx() -> str:
    """Debian's nginx binary, or skip (fail under CI, where .ci/run installs it)."""
    import os

    from .servers.nginx import INSTALL_HINT, nginx_binary

    binary = nginx_binary()
    if binary:
        return binary
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the nginx tests: {INSTALL_HINT}")
    pytest.skip(f"no nginx: {INSTALL_HINT}")
