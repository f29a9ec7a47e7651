"""The reference server's per-turn path stays as cheap as ADK's ``/run_sse`` (issue 11; notebook 11
measures it with ``python -m workshop.bench.versus``).

Counts, not times (they hold on a loaded machine): per turn, the session service is called as
often as ``/run_sse`` calls it and opens no database connection once warm; the replay store gets
one write per frame; the server's own code starts one task. And the first frame leaves while the
model's burst is still coming out of ADK, not after it.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import fastapi.dependencies.utils
import fastapi.routing
import httpx
import pytest
from google.adk.events import Event
from google.genai import types
from httpx_sse import connect_sse

from reference_server import Settings, create_app
from reference_server.persistence import SerializedSqliteSessionService, prepare_sqlite_file
from reference_server.replay import InMemoryReplayStore
from reference_server.turns import TurnManager
from workshop.servers import BackgroundServer
from workshop.testing import REFERENCE_TOKENS

ALICE = {"Authorization": "Bearer tok-alice"}


class CountingSqlite(SerializedSqliteSessionService):
    def __init__(self, db_path: str) -> None:
        super().__init__(db_path)
        self.calls: Counter[str] = Counter()

    async def create_session(self, **kwargs):
        self.calls["create_session"] += 1
        return await super().create_session(**kwargs)

    async def get_session(self, **kwargs):
        self.calls["get_session"] += 1
        return await super().get_session(**kwargs)

    async def append_event(self, session, event):
        self.calls["append_event"] += 1
        return await super().append_event(session, event)


class CountingStore(InMemoryReplayStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def begin_turn(self, *args, **kwargs):
        self.calls["begin_turn"] += 1
        return await super().begin_turn(*args, **kwargs)

    async def append(self, *args, **kwargs):
        self.calls["append"] += 1
        return await super().append(*args, **kwargs)

    async def read(self, *args, **kwargs):
        self.calls["read"] += 1
        return await super().read(*args, **kwargs)


def one_turn(base: str, text: str) -> tuple[str, list[tuple[str, str]]]:
    with httpx.Client(base_url=base, headers=ALICE, timeout=60) as client:
        session_id = client.post("/api/sessions").json()["session_id"]
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", json={"text": text}) as source:
            assert source.response.status_code == 200, source.response.read()
            return session_id, [(sse.event, sse.data) for sse in source.iter_sse()]


def test_a_turn_costs_what_it_must_and_no_more(emulator, tmp_path, monkeypatch):
    """A fresh session and one message, on SQLite, after a warm-up turn: the session service is
    called as ``/run_sse`` calls it (create; look up, as ``/run_sse`` does before its run, with
    ADK's own look-up inside the run; one append per persisted event) and opens no connection;
    the replay store takes one write per frame sent, and at most one read per frame (a
    follower waits to be woken, it does not poll, and takes the frames that are ready
    together); the server's code starts one task (the turn's), no task per frame and no
    grace-period timer for a client still there; nothing runs in FastAPI's thread pool (a
    plain-def dependency would: a thread round trip before the first byte)."""
    service = CountingSqlite(str(prepare_sqlite_file(tmp_path / "sessions.db")))
    store = CountingStore()
    ours: Counter[str] = Counter()
    create_task = asyncio.create_task

    def counting_create_task(coro, **kwargs):
        code = getattr(coro, "cr_code", None)
        if code is not None and "reference_server" in code.co_filename:
            ours[code.co_name] += 1
        return create_task(coro, **kwargs)

    monkeypatch.setattr(asyncio, "create_task", counting_create_task)
    hops = Counter()  # FastAPI runs a plain-def dependency or route in its thread pool
    for module in (fastapi.dependencies.utils, fastapi.routing):
        def counting_run_in_threadpool(func, *args, _real=module.run_in_threadpool, **kwargs):
            hops[getattr(func, "__name__", repr(func))] += 1
            return _real(func, *args, **kwargs)
        monkeypatch.setattr(module, "run_in_threadpool", counting_run_in_threadpool)
    app = create_app(Settings(tokens=dict(REFERENCE_TOKENS), session_service=service,
                              replay_store=store))
    with BackgroundServer(app) as server:
        one_turn(server.url, "Count to 9. (warm-up)")
        turns = 3
        for i in range(turns):
            service.calls.clear()
            store.calls.clear()
            ours.clear()
            hops.clear()
            opened = service.connections_opened
            session_id, frames = one_turn(server.url, f"Count to 29. ({i})")
            assert frames[-1][0] == "done", frames[-1]
            persisted = asyncio.run(service.get_session(app_name="workshop", user_id="alice",
                                                        session_id=session_id)).events
            service.calls["get_session"] -= 1  # this test's own look-up just now
            assert service.connections_opened - opened <= 1  # this test's look-up may open one
            assert service.calls == {"create_session": 1, "get_session": 2,
                                     "append_event": len(persisted)}, service.calls
            assert len(persisted) == 2  # the user's message and the whole answer, no partial one
            assert store.calls["begin_turn"] == 1
            assert store.calls["append"] == len(frames), (store.calls, len(frames))
            assert store.calls["read"] <= len(frames) + 2, (store.calls, len(frames))
            assert sum(ours.values()) == 1, ours  # the turn's own task
            assert not hops, hops  # no thread round trip before the first byte
        assert not server.errors


class BurstRunner:
    """A runner whose events come out with no pause between them: the model's chunks are
    already read (a fast model, or a burst after a slow start)."""

    app_name = "burst"
    session_service = None

    def __init__(self, events: int) -> None:
        self.events = events

    async def run_async(self, **_kwargs):
        for i in range(self.events):
            yield Event(author="assistant", invocation_id="inv", partial=True,
                        content=types.Content(role="model", parts=[types.Part(text=f"{i} ")]))


@pytest.mark.parametrize("events", [50])
def test_the_first_frame_leaves_before_the_burst_ends(events):
    """The client that started the turn gets its first frames while ADK is still producing the
    rest (as ``/run_sse``, which sends each event from the task that makes it): the turn's
    task lets the followers run after each frame it writes."""

    async def scenario() -> tuple[int, list[int]]:
        store = InMemoryReplayStore()
        turns = TurnManager(BurstRunner(events), store, run_config=None)
        turn = await turns.start("alice", "s1", "Count")
        await turn.decided.wait()
        stored_at_first_chunk = None
        ids = []
        async for chunk in turns.follow("s1"):
            if stored_at_first_chunk is None:
                stored_at_first_chunk = len((await store.read("s1", 0)).frames)
            ids += [int(line[4:]) for line in chunk.decode().splitlines() if line.startswith("id: ")]
        return stored_at_first_chunk, ids

    stored_at_first_chunk, ids = asyncio.run(scenario())
    assert ids == list(range(1, events + 2))  # every frame once, in order, then `done`
    assert stored_at_first_chunk <= events // 4, stored_at_first_chunk


def test_done_frame_counts_the_events():
    """The burst runner's stream ends as a real one does (guards the fixture above)."""

    async def scenario() -> bytes:
        store = InMemoryReplayStore()
        turns = TurnManager(BurstRunner(3), store, run_config=None)
        await turns.start("alice", "s1", "Count")
        return b"".join([chunk async for chunk in turns.follow("s1")])

    body = asyncio.run(scenario()).decode()
    assert json.loads(body.rsplit("data: ", 1)[1]) == {"events": 3}


def test_the_in_memory_store_drops_expired_turns_without_scanning_every_session():
    """``begin_turn`` purges ended turns past their time to live: oldest end first, stopping at
    the first still alive, so starting a turn costs the same beside 5,000 recent sessions
    (the old purge read the clock once per session). A replaced turn is not dropped by its
    old end; a running one never is."""
    from reference_server.replay import Frame

    now = [0.0]
    reads = [0]

    def clock() -> float:
        reads[0] += 1
        return now[0]

    async def scenario() -> None:
        store = InMemoryReplayStore(ttl_s=100, clock=clock)
        for i in range(5000):
            assert await store.begin_turn(f"s{i}", "t1")
            await store.append(f"s{i}", "t1", Frame(1, "done", "{}"))
            now[0] += 0.01  # s0 ended first, s4999 last
        assert await store.begin_turn("running", "t1")
        assert await store.begin_turn("s0", "t2")  # s0 has a new turn: its old end no longer counts
        reads[0] = 0
        assert await store.begin_turn("new", "t1")
        assert reads[0] <= 2, reads[0]  # the clock, not once per session
        now[0] = 100 + 25.005  # 100 s after s2500's end: s1..s2500 expired (s0 has a running turn)
        assert await store.purge() == 2500
        assert await store.read("s2500", 0) is None and await store.read("s2501", 0) is not None
        assert (await store.read("s0", 0)).turn_id == "t2"
        now[0] = 10_000
        assert await store.purge() == 2499  # the rest ended; s0, running and new never did
        assert {sid for sid in ("s0", "running", "new") if await store.read(sid, 0)} == {"s0", "running", "new"}
        assert len(store) == 3

    asyncio.run(scenario())
