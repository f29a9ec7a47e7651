"""Sessions persist in a real database (SQLite by default, PostgreSQL through DATABASE_URL):
a conversation continues across a server restart, and ownership survives it.

The PostgreSQL cases need ``WORKSHOP_TEST_DATABASE_URL`` (``.ci/run`` starts PostgreSQL and
exports it); without it they skip, except under ``CI``, where they fail.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from google.adk.sessions import DatabaseSessionService, InMemorySessionService
from httpx_sse import connect_sse
from sqlalchemy.pool import NullPool

from reference_server import Settings, create_app, persistence
from reference_server.persistence import (
    SerializedSqliteSessionService,
    describe,
    redact_url,
    session_service_from_url,
)
from workshop.servers import BackgroundServer
from workshop.testing import REFERENCE_TOKENS, postgres_url

ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}


def sse_turn(base: str, session_id: str, text: str, headers=ALICE) -> list[tuple[str, str]]:
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", json={"text": text}) as source:
            assert source.response.status_code == 200, source.response.read()
            return [(sse.event, sse.data) for sse in source.iter_sse()]


def final_text(frames: list[tuple[str, str]]) -> str:
    texts = [json.loads(data) for event, data in frames if event == "message"]
    return "".join(p.get("text", "") for e in texts if not e.get("partial")
                   for p in e.get("content", {}).get("parts", []))


# -- choosing the service ------------------------------------------------------------------
def test_url_forms(tmp_path, monkeypatch):
    assert isinstance(session_service_from_url("memory://"), InMemorySessionService)
    file = tmp_path / "sub" / "s.db"
    service = session_service_from_url(f"sqlite:///{file}")
    assert isinstance(service, SerializedSqliteSessionService) and file.exists()
    assert str(file) in describe(service)
    pg = session_service_from_url("postgres://app:s3cret@db.example:5432/chat")  # no connection yet
    assert isinstance(pg, DatabaseSessionService)
    assert pg.db_engine.url.drivername == "postgresql+asyncpg"
    assert "s3cret" not in describe(pg) and "db.example" in describe(pg)
    with pytest.raises(ValueError, match="not a database URL") as raised:
        session_service_from_url("s3cret-not-a-url")
    assert "s3cret" in str(raised.value)  # no password there to hide; but a URL's is hidden:
    assert redact_url("postgresql://app:s3cret@h/db") == "postgresql://app:***@h/db"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_from_env_reads_database_url(tmp_path, monkeypatch):
    monkeypatch.setattr(persistence, "DEFAULT_SQLITE_PATH", tmp_path / ".workshop" / "sessions.db")
    default = Settings.from_env({"WORKSHOP_TOKENS": "t:u"})
    assert isinstance(default.session_service, SerializedSqliteSessionService)
    assert (tmp_path / ".workshop" / "sessions.db").exists()
    memory = Settings.from_env({"WORKSHOP_TOKENS": "t:u", "DATABASE_URL": "memory://"})
    assert isinstance(memory.session_service, InMemorySessionService)
    given = InMemorySessionService()
    assert Settings.from_env({"DATABASE_URL": "sqlite:///nowhere/x.db"}, session_service=given).session_service is given
    # One default, however the settings are made: built in code, the same SQLite file.
    in_code = Settings(tokens={"t": "u"})
    assert isinstance(in_code.session_service, SerializedSqliteSessionService)
    assert describe(in_code.session_service) == describe(default.session_service)
    assert isinstance(Settings(tokens={"t": "u"}, database_url="memory://").session_service,
                      InMemorySessionService)
    assert "pw" not in repr(Settings(tokens={"t": "u"}, database_url=f"sqlite:///{tmp_path / 'pw.db'}"))


def test_default_sqlite_file_is_under_the_project_and_ignored():
    root = persistence.PROJECT_ROOT
    assert (root / "pyproject.toml").exists()
    assert persistence.DEFAULT_SQLITE_PATH.relative_to(root).parts[0] == ".workshop"
    assert ".workshop/" in (root / ".gitignore").read_text().split()


# -- a restart ----------------------------------------------------------------------------
def _restart_roundtrip(emulator, make_service) -> None:
    """Two successive server instances on the same database: the second continues the first's
    conversation (the model sees the whole history) and still knows who owns it."""
    service = make_service()
    with BackgroundServer(create_app(Settings(tokens=dict(REFERENCE_TOKENS), session_service=service))) as first:
        session_id = httpx.post(f"{first.url}/api/sessions", headers=ALICE).json()["session_id"]
        frames = sse_turn(first.url, session_id, "Count to 3")
        assert frames[-1][0] == "done"
        answer = final_text(frames)
    assert not first.running

    service = make_service()  # a new process would build a new one from DATABASE_URL
    with BackgroundServer(create_app(Settings(tokens=dict(REFERENCE_TOKENS), session_service=service))) as second:
        assert httpx.post(f"{second.url}/api/sessions/{session_id}/messages", headers=BOB,
                          json={"text": "Hello"}).status_code == 404  # still Alice's, not Bob's
        frames = sse_turn(second.url, session_id, "What is the capital of France?")
        assert frames[-1][0] == "done", frames[-1]
    history = emulator.requests[-1].body["contents"]
    texts = ["".join(p.get("text", "") for p in c["parts"]) for c in history]
    assert texts == ["Count to 3", answer, "What is the capital of France?"]

    async def stored():
        return await make_service().get_session(app_name="workshop", user_id="alice", session_id=session_id)
    session = asyncio.run(stored())
    assert [e.author for e in session.events] == ["user", "assistant", "user", "assistant"]
    assert asyncio.run(make_service().get_session(app_name="workshop", user_id="bob",
                                                  session_id=session_id)) is None


def test_conversation_survives_a_restart_on_sqlite(emulator, tmp_path):
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    _restart_roundtrip(emulator, lambda: session_service_from_url(url))


def test_conversation_survives_a_restart_on_postgresql(emulator):
    url = postgres_url()
    # NullPool: each server instance runs on its own thread's event loop, and a pooled asyncpg
    # connection belongs to the loop that opened it.
    _restart_roundtrip(emulator, lambda: session_service_from_url(url, poolclass=NullPool))


def test_pool_size_from_env():
    from reference_server.persistence import session_service_from_env

    url = "postgresql://app:pw@db.example/chat"  # no connection is made
    assert session_service_from_env({"DATABASE_URL": url}).db_engine.pool.size() == 5
    assert session_service_from_env({"DATABASE_URL": url, "DATABASE_POOL_SIZE": "40"}).db_engine.pool.size() == 40
    with pytest.raises(ValueError, match="DATABASE_POOL_SIZE"):
        session_service_from_env({"DATABASE_URL": url, "DATABASE_POOL_SIZE": "lots"})


def test_replay_store_from_env(tmp_path):
    from reference_server.persistence import DatabaseReplayStore, replay_store_from_env
    from reference_server.replay import InMemoryReplayStore

    url = f"sqlite:///{tmp_path / 's.db'}"
    env = {"WORKSHOP_TOKENS": "t:u", "DATABASE_URL": url}
    assert replay_store_from_env(env, 300) is None  # the server's in-memory default
    shared = Settings.from_env({**env, "WORKSHOP_REPLAY_STORE": "database", "WORKSHOP_REPLAY_TTL_S": "60"})
    assert isinstance(shared.replay_store, DatabaseReplayStore) and shared.replay_store.ttl_s == 60
    given = InMemoryReplayStore()
    assert Settings.from_env({**env, "WORKSHOP_REPLAY_STORE": "database"}, replay_store=given).replay_store is given
    with pytest.raises(ValueError, match="memory, database or redis"):
        replay_store_from_env({**env, "WORKSHOP_REPLAY_STORE": "files"}, 300)
    with pytest.raises(ValueError, match="needs a database"):
        replay_store_from_env({"DATABASE_URL": "memory://", "WORKSHOP_REPLAY_STORE": "database"}, 300)


def test_redis_replay_store_from_env():
    """REDIS_URL alone picks the Redis store; WORKSHOP_REPLAY_STORE wins when set. No connection
    is made until the store is used."""
    from reference_server.persistence import DatabaseReplayStore, replay_store_from_env
    from reference_server.replay_redis import DEFAULT_PREFIX, RedisReplayStore

    redis = {"REDIS_URL": "redis://:s3cret@cache.example:6379/2"}
    chosen = replay_store_from_env(redis, 60)
    assert isinstance(chosen, RedisReplayStore) and chosen.ttl_s == 60 and chosen.prefix == DEFAULT_PREFIX
    assert replay_store_from_env({**redis, "WORKSHOP_REDIS_PREFIX": "app1:"}, 60).prefix == "app1:"
    assert replay_store_from_env({**redis, "WORKSHOP_REPLAY_STORE": "memory"}, 60) is None
    assert isinstance(replay_store_from_env({**redis, "WORKSHOP_REPLAY_STORE": "database",
                                             "DATABASE_URL": "postgresql://u:p@h/db"}, 60),
                      DatabaseReplayStore)
    assert isinstance(Settings.from_env({**redis, "WORKSHOP_TOKENS": "t:u", "DATABASE_URL": "memory://"})
                      .replay_store, RedisReplayStore)
    with pytest.raises(ValueError, match="redis needs REDIS_URL"):
        replay_store_from_env({"WORKSHOP_REPLAY_STORE": "redis"}, 60)
    with pytest.raises(ValueError, match="redis://") as raised:
        replay_store_from_env({"REDIS_URL": "http://:s3cret@cache.example/"}, 60)
    assert "s3cret" not in str(raised.value)


def test_processes_starting_together_on_a_new_sqlite_file_all_get_it_in_wal_mode(tmp_path):
    """Servers started at once on a new file: switching it to WAL can answer "database is
    locked" at once (a CI run lost a two-process test to it); each must wait and succeed."""
    import subprocess
    import sys

    path = tmp_path / "new.db"
    code = ("import sys; from pathlib import Path; from reference_server.persistence import "
            "prepare_sqlite_file; prepare_sqlite_file(Path(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stderr=subprocess.PIPE)
             for _ in range(8)]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    import sqlite3
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
