"""The Redis replay store (``reference_server/replay_redis.py``) against a real ``redis-server``
(the ``redis_url`` fixture): the same semantics as the database store, with followers woken by
``XREAD BLOCK`` (no polling), and Redis's own expiry.

Two ``RedisReplayStore`` instances on one Redis stand for two server processes: they share
nothing but Redis.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import pytest
from google.adk.sessions import InMemorySessionService

from reference_server import InMemoryReplayStore, Settings, create_app
from reference_server.replay import Frame
from reference_server.replay_redis import RedisReplayStore
from workshop.servers import BackgroundServer

RACERS = 8


def sid() -> str:
    return f"s-{uuid.uuid4().hex}"  # one Redis serves the whole test session


@pytest.fixture
async def pair(redis_url):
    """Two stores ("two processes") on one Redis, with a shared fake wall clock."""
    now = [1000.0]
    stores = [RedisReplayStore(redis_url, ttl_s=60, clock=lambda: now[0]) for _ in range(2)]
    yield (*stores, now)
    for store in stores:
        await store.close()


async def test_begin_turn_is_one_atomic_step_across_stores(pair):
    a, b, now = pair
    for _ in range(5):
        session = sid()
        won = await asyncio.gather(*((a, b)[i % 2].begin_turn(session, f"t{i}", owner_stale_s=15, key=f"k{i}")
                                     for i in range(RACERS)))
        assert won.count(True) == 1, won
        winner = won.index(True)
        tail = await b.read(session, 0)
        assert (tail.turn_id, tail.key, tail.frames, tail.finished) == (f"t{winner}", f"k{winner}", [], False)
        assert not await a.begin_turn(session, "late", owner_stale_s=15)  # running: refused
        now[0] += 16  # the owner stopped checking in: its process died
        assert await a.begin_turn(session, "after-death", owner_stale_s=15)
        assert (await b.read(session, 0)).key is None  # no Idempotency-Key this time
        await a.append(session, "after-death", Frame(1, "done", "{}"))
        assert await b.begin_turn(session, "next", owner_stale_s=15, key="")  # ended: the next one
        tail = await a.read(session, 0)
        assert (tail.turn_id, tail.key, tail.frames) == ("next", "", [])


async def test_append_and_read_keep_order_and_refuse_what_is_not_the_running_turn(pair):
    a, b, _ = pair
    session = sid()
    assert await b.read(session, 0) is None
    assert await a.begin_turn(session, "t1", owner_stale_s=15)
    data = '{"text": "caf\\u00e9 \u2615", "n": 1}'
    await a.append(session, "t1", Frame(1, "event", data))
    await a.append(session, "t1", Frame(2, "event", '{"error_code": "X"}', code="X"))
    with pytest.raises(ValueError, match="out of order"):
        await a.append(session, "t1", Frame(4, "event", "{}"))
    await a.append(session, "t1", Frame(3, "error", '{"error": {"code": "X"}}', code="X"))
    tail = await b.read(session, 0)
    assert tail.frames == [Frame(1, "event", data), Frame(2, "event", '{"error_code": "X"}', "X"),
                           Frame(3, "error", '{"error": {"code": "X"}}', "X")]
    assert tail.finished and tail.turn_id == "t1"
    assert [f.id for f in (await b.read(session, 2)).frames] == [3]
    assert (await b.read(session, 3)).frames == [] and (await b.read(session, 3)).finished
    await a.append(session, "t1", Frame(4, "event", "{}"))  # after the end: ignored
    assert [f.id for f in (await b.read(session, 0)).frames] == [1, 2, 3]
    assert await b.begin_turn(session, "t2", owner_stale_s=15)
    await a.append(session, "t1", Frame(1, "event", "{}"))  # the replaced turn: ignored
    assert (await a.read(session, 0)).frames == []
    assert await a.purge() == 0  # Redis expires the keys itself


@pytest.mark.parametrize("where", ["another store", "the writer's store"])
async def test_a_follower_is_woken_by_each_frame_without_polling(pair, where):
    """The follower waits with a 30 s timeout: each frame, appended PACE_S apart, wakes it well
    within the pace (a poll would wake it at its period, or at 30 s): through Redis (XREAD BLOCK)
    in another store, by the append itself in the writer's."""
    a, other, _ = pair
    b = other if where == "another store" else a
    pace_s, count = 0.1, 12
    session = sid()
    assert await a.begin_turn(session, "t1", owner_stale_s=15)
    appended: dict[int, float] = {}
    seen: dict[int, float] = {}

    async def follow() -> None:
        after = 0
        while True:
            tail = await b.read(session, after)
            for frame in tail.frames:
                seen[frame.id] = time.monotonic()
            after = tail.frames[-1].id if tail.frames else after
            if tail.finished:
                return
            await b.wait(session, after, timeout=30)

    follower = asyncio.create_task(follow())
    for n in range(1, count + 1):
        await asyncio.sleep(pace_s)
        appended[n] = time.monotonic()
        await a.append(session, "t1", Frame(n, "done" if n == count else "event", f'{{"n": {n}}}'))
    await asyncio.wait_for(follower, 10)
    assert sorted(seen) == list(range(1, count + 1))
    delays = [seen[n] - appended[n] for n in seen]
    assert statistics.median(delays) < pace_s / 2, delays
    assert max(delays) < 30 / 3, delays  # not the wait's 30 s timeout (a paused process: seconds)


async def test_wait_returns_at_once_when_there_is_nothing_to_wait_for(pair):
    a, b, _ = pair
    session = sid()
    began = time.monotonic()
    await b.wait(session, 0, timeout=20)  # no turn
    assert await a.begin_turn(session, "t1", owner_stale_s=15)
    await a.append(session, "t1", Frame(1, "event", "{}"))
    await b.wait(session, 0, timeout=20)  # frame 1 is there already
    await a.append(session, "t1", Frame(2, "done", "{}"))
    await b.wait(session, 2, timeout=20)  # the turn ended
    assert time.monotonic() - began < 10
    # A short timeout with nothing coming: it returns after about that long.
    assert await a.begin_turn(session, "t2", owner_stale_s=15)
    began = time.monotonic()
    await b.wait(session, 0, timeout=0.2)
    assert 0.15 < time.monotonic() - began < 10


async def test_a_new_turn_wakes_the_followers_of_the_one_it_replaces(pair):
    a, b, now = pair
    session = sid()
    assert await a.begin_turn(session, "t1", owner_stale_s=15)
    await a.append(session, "t1", Frame(1, "event", "{}"))
    waiter = asyncio.create_task(b.wait(session, 1, timeout=30))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    now[0] += 16  # t1's owner went silent: t2 takes the session over
    assert await b.begin_turn(session, "t2", owner_stale_s=15)
    await asyncio.wait_for(waiter, 10)
    assert (await b.read(session, 1)).turn_id == "t2"


async def test_cancel_and_reader_marks_are_seen_by_the_owner(pair):
    a, b, now = pair
    session, other = sid(), sid()
    assert await a.begin_turn(session, "t1", owner_stale_s=15)
    assert await a.begin_turn(other, "o1", owner_stale_s=15)
    state = await b.turn_state(session)
    assert (state.turn_id, state.ended, state.owner_age_s, state.reader_age_s, state.cancel_requested) == (
        "t1", False, 0.0, None, False)
    assert await a.owner_alive([session, other], beat=False) == set()
    await b.mark(session, "t0", cancel=True)  # not the running turn: ignored
    assert await a.owner_alive([session, other], beat=False) == set()
    now[0] += 2
    await b.mark(session, "t1", reader=True)
    await b.mark(session, "t1", cancel=True)  # process b got POST .../cancel
    assert await a.owner_alive([session, other], beat=True) == {session}  # the owner picks it up
    state = await b.turn_state(session)
    assert state.cancel_requested and state.reader_age_s == 0.0 and state.owner_age_s == 0.0
    now[0] += 5
    assert (await b.turn_state(other)).owner_age_s == 5.0  # beaten at the same time
    await a.append(session, "t1", Frame(1, "cancelled", '{"reason": "cancel_requested"}'))
    assert (await b.turn_state(session)).ended
    assert await a.owner_alive([session, other], beat=True) == set()  # ended: no more cancels
    assert await b.turn_state(sid()) is None


async def test_a_cancel_asked_on_another_store_wakes_the_owner_at_once(pair):
    a, b, _ = pair
    session = sid()
    assert await a.begin_turn(session, "t1", owner_stale_s=15)
    await a.cancel_asked([session], 0.01)  # subscribed from here on
    began = time.monotonic()
    await a.cancel_asked([session], 0.3)  # nothing asked: it waits its timeout
    assert time.monotonic() - began >= 0.25
    waiter = asyncio.create_task(a.cancel_asked([session], 30))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await b.mark(session, "t1", cancel=True)
    await asyncio.wait_for(waiter, 10)  # woken by the publish, not at 30 s
    assert await a.owner_alive([session], beat=True) == {session}


def test_a_cancel_through_another_server_is_pushed_not_polled(emulator, redis_url, monkeypatch):
    """Two servers on one Redis; the turn runs on a, the cancel is asked on b. With the owner's
    check-ins and cancel polls slowed to 12 s (under the 15 s after which an owner counts as
    gone), a poll would take seconds; the push takes milliseconds (the bound, 4 s, leaves room
    for a loaded machine)."""
    import httpx
    from httpx_sse import connect_sse

    import reference_server.turns as turns_module

    slow_s = 12.0
    monkeypatch.setattr(turns_module, "WATCH_S", slow_s)
    monkeypatch.setattr(turns_module, "OWNER_BEAT_S", slow_s)
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    alice = {"Authorization": "Bearer tok-alice"}

    sessions = InMemorySessionService()  # both servers' conversations, as a shared database would

    def server() -> BackgroundServer:
        return BackgroundServer(create_app(Settings(tokens={"tok-alice": "alice"}, session_service=sessions,
                                                    replay_store=RedisReplayStore(redis_url))))

    with server() as a, server() as b, httpx.Client(timeout=30, headers=alice) as client:
        session_id = client.post(f"{a.url}/api/sessions").json()["session_id"]
        with connect_sse(client, "POST", f"{a.url}/api/sessions/{session_id}/messages",
                         json={"text": "Count to 1000"}) as source:  # 20 s: longer than a poll
            events = source.iter_sse()
            next(events)
            busy = client.post(f"{b.url}/api/sessions/{session_id}/messages", json={"text": "hi"})
            assert busy.status_code == 409 and busy.json()["error"]["code"] == "TURN_IN_PROGRESS"
            began = time.monotonic()
            assert client.post(f"{b.url}/api/sessions/{session_id}/cancel").json() == {"cancelled": True}
            took = time.monotonic() - began
            rest = list(events)
        assert rest[-1].event == "cancelled", rest[-1]
        assert took < slow_s / 3, f"the cancel took {took:.2f} s: polled, not pushed"


async def test_ended_turns_expire_after_their_ttl_and_silent_ones_after_idle_s(redis_url):
    store = RedisReplayStore(redis_url, ttl_s=0.5, idle_s=1.5)
    try:
        session = sid()
        keys = store._keys(session)
        assert await store.begin_turn(session, "t1", owner_stale_s=15)
        await store.append(session, "t1", Frame(1, "event", "{}"))
        for key in keys:  # running: the idle time, renewed by every write and check-in
            assert 500 < await store.redis.pttl(key) <= 1500
        await store.append(session, "t1", Frame(2, "done", "{}"))
        for key in keys:
            assert 0 < await store.redis.pttl(key) <= 500
        assert await _gone(store, session)
        # A turn whose owner died and that nobody sealed: gone after idle_s, so not running.
        assert await store.begin_turn(session, "t2", owner_stale_s=3600)
        assert not await store.begin_turn(session, "t3", owner_stale_s=3600)
        assert await _gone(store, session)
        assert await store.begin_turn(session, "t3", owner_stale_s=3600)
    finally:
        await store.close()


async def _gone(store: RedisReplayStore, session: str, within_s: float = 15) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await store.read(session, 0) is None and await store.turn_state(session) is None:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_prefixes_keep_two_deployments_apart(redis_url):
    one = RedisReplayStore(redis_url, prefix="one:")
    two = RedisReplayStore(redis_url, prefix="two:")
    try:
        session = sid()
        assert await one.begin_turn(session, "t1", owner_stale_s=15)
        assert await two.begin_turn(session, "t2", owner_stale_s=15)
        assert (await one.read(session, 0)).turn_id == "t1"
        assert await one.redis.exists(f"one:{{{session}}}:turn", f"one:{{{session}}}:frames") == 2
    finally:
        await one.close()
        await two.close()


async def test_close_releases_the_connections(redis_url):
    name = f"closing-{uuid.uuid4().hex[:8]}"
    store = RedisReplayStore(redis_url, client_name=name)
    watcher = RedisReplayStore(redis_url)
    try:
        session = sid()
        assert await store.begin_turn(session, "t1", owner_stale_s=15)
        await asyncio.gather(store.wait(session, 0, 0.3), store.read(session, 0))  # two connections

        async def mine() -> int:
            return sum(c.get("name") == name for c in await watcher.redis.client_list())

        assert await mine() >= 1
        await store.close()
        deadline = time.monotonic() + 10
        while await mine() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await mine() == 0
    finally:
        await watcher.close()


class _Recording(InMemoryReplayStore):
    closed = 0

    async def close(self) -> None:
        type(self).closed += 1


def test_the_server_closes_its_store_at_shutdown():
    app = create_app(Settings(tokens={"t": "u"}, database_url="memory://", replay_store=_Recording()))
    with BackgroundServer(app):
        assert _Recording.closed == 0
    assert _Recording.closed == 1
