"""One turn per session, for real: N messages racing for one session start exactly one turn.

Starting a turn is one atomic step in the replay store (``ReplayStore.begin_turn``: a
check-and-set in memory, a conditional ``UPDATE`` or a primary-key ``INSERT`` in the database),
so 8 POSTs sent at once to one session get exactly one 200 and seven 409s, and the model is
called once: with the default in-memory store, with the database store (SQLite; PostgreSQL when
``WORKSHOP_TEST_DATABASE_URL`` is set, as in CI), with the Redis store (a Lua script), and across
two server processes sharing either.
Each case runs many rounds: a race that is lost once in a while is still a race.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from reference_server import Settings, create_app
from reference_server.persistence import DatabaseReplayStore, session_service_from_url
from reference_server.replay_redis import RedisReplayStore
from workshop.servers import BackgroundServer
from workshop.servers.scaleout import start_processes
from workshop.testing import postgres_url

TOKENS = "tok-alice:alice"
ALICE = {"Authorization": "Bearer tok-alice"}
RACERS = 8


async def race(client: httpx.AsyncClient, base_urls: list[str], session_id: str) -> list[int]:
    """RACERS POSTs to one session at once (spread over ``base_urls``, each on a connection of
    its own). The turn of the one that gets 200 is a long answer, cancelled once every racer
    has its status, so every loser met it running. Their statuses, sorted."""
    answered = 0
    all_answered = asyncio.Event()

    async def one(number: int) -> int:
        nonlocal answered
        base = base_urls[number % len(base_urls)]
        async with client.stream("POST", f"{base}/api/sessions/{session_id}/messages",
                                 json={"text": "Count to 300"}) as response:
            answered += 1
            if answered == RACERS:
                all_answered.set()
            if response.status_code == 200:
                await all_answered.wait()
                cancel = await client.post(f"{base}/api/sessions/{session_id}/cancel")
                assert cancel.json() == {"cancelled": True}
                body = await response.aread()
                assert body.rstrip().endswith(b'data: {"reason": "cancel_requested"}'), body[-300:]
            else:
                body = await response.aread()
                assert response.json()["error"]["code"] == "TURN_IN_PROGRESS", body
            return response.status_code

    return sorted(await asyncio.gather(*(one(n) for n in range(RACERS))))


def rounds(emulator, base_urls: list[str], count: int, logs=lambda: "") -> None:
    emulator.set_pacing(first_token_s=0.05, chunk_s=0.02)  # 300 chunks: 6 s, far more than needed

    async def run() -> None:
        limits = httpx.Limits(max_connections=RACERS + 1, max_keepalive_connections=0)  # a connection each
        async with httpx.AsyncClient(headers=ALICE, timeout=30, limits=limits) as client:
            for number in range(count):
                created = await client.post(f"{base_urls[0]}/api/sessions")
                session_id = created.json()["session_id"]
                before = len(emulator.requests)
                try:
                    async with asyncio.timeout(60):  # a stuck round fails, with the servers' logs
                        statuses = await race(client, base_urls, session_id)
                except (AssertionError, TimeoutError) as failed:
                    raise AssertionError(f"round {number}: {failed}; server logs: {logs()}") from None
                assert statuses == [200] + [409] * (RACERS - 1), (number, statuses, logs())
                assert len(emulator.requests) - before == 1, f"round {number}: the model was called twice"

    asyncio.run(run())


@contextlib.contextmanager
def served(**settings):
    app = create_app(Settings(tokens={"tok-alice": "alice"}, **settings))
    with BackgroundServer(app) as server:
        yield server


def database_url(database: str, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'sessions.db'}" if database == "sqlite" else postgres_url()


def test_in_memory_store_starts_one_turn_of_eight(emulator):
    with served(database_url="memory://") as server:
        rounds(emulator, [server.url], 20)
        assert server.errors == []


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_database_store_starts_one_turn_of_eight(database, emulator, tmp_path):
    url = database_url(database, tmp_path)
    with served(session_service=session_service_from_url(url),
                replay_store=DatabaseReplayStore(url)) as server:
        rounds(emulator, [server.url], 20)
        assert server.errors == []


def test_redis_store_starts_one_turn_of_eight(emulator, redis_url):
    with served(database_url="memory://", replay_store=RedisReplayStore(redis_url)) as server:
        rounds(emulator, [server.url], 20)
        assert server.errors == []


@pytest.mark.parametrize("store", ["sqlite", "postgresql", "redis"])
def test_two_processes_start_one_turn_of_eight(store, emulator, gemini_emulator_session, tmp_path, request):
    """Two real server processes on one database (and, for "redis", one Redis: chosen by
    REDIS_URL alone), the racers spread over both."""
    shared = ({"DATABASE_URL": database_url("sqlite", tmp_path), "WORKSHOP_REPLAY_STORE": None,
               "REDIS_URL": request.getfixturevalue("redis_url")} if store == "redis" else
              {"DATABASE_URL": database_url(store, tmp_path), "WORKSHOP_REPLAY_STORE": "database"})
    env = {**shared, "WORKSHOP_TOKENS": TOKENS, "GOOGLE_GEMINI_BASE_URL": gemini_emulator_session.url,
           "GOOGLE_API_KEY": "test-key", "GEMINI_API_KEY": None, "GOOGLE_GENAI_USE_VERTEXAI": None}
    servers = start_processes(2, env)
    try:
        rounds(emulator, [s.url for s in servers], 12, logs=lambda: [s.log()[-3000:] for s in servers])
        assert all(s.process.poll() is None for s in servers)
    finally:
        for server in servers:
            server.stop()


async def _racing_begin_turn(url: str, store_class=DatabaseReplayStore) -> None:
    """The store alone, two instances ("two processes"): of 8 racing begin_turn calls one wins;
    a running turn is never replaced; an ended one, or one whose owner went silent, is."""
    import uuid

    from reference_server.replay import Frame

    now = [1000.0]
    stores = [store_class(url, clock=lambda: now[0]) for _ in range(2)]
    try:
        for _ in range(5):
            sid = f"race-{uuid.uuid4().hex}"
            won = await asyncio.gather(*(stores[i % 2].begin_turn(sid, f"t{i}", owner_stale_s=15,
                                                                  key=f"k{i}")
                                         for i in range(RACERS)))
            assert won.count(True) == 1, won
            winner = f"t{won.index(True)}"
            tail = await stores[1].read(sid, 0)
            assert (tail.turn_id, tail.key) == (winner, f"k{won.index(True)}")
            assert not await stores[0].begin_turn(sid, "late", owner_stale_s=15)
            now[0] += 16  # the owner stopped checking in: its process died
            assert await stores[0].begin_turn(sid, "after-death", owner_stale_s=15)
            await stores[0].append(sid, "after-death", Frame(1, "done", "{}"))
            assert await stores[1].begin_turn(sid, "next", owner_stale_s=15)  # ended: next one
            assert (await stores[0].read(sid, 0)).frames == []
    finally:
        for store in stores:
            await store.close()


def test_database_begin_turn_races_on_sqlite(tmp_path):
    asyncio.run(_racing_begin_turn(f"sqlite:///{tmp_path / 'race.db'}"))


def test_database_begin_turn_races_on_postgresql():
    asyncio.run(_racing_begin_turn(postgres_url()))


def test_redis_begin_turn_races(redis_url):
    asyncio.run(_racing_begin_turn(redis_url, RedisReplayStore))
