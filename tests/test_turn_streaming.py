"""How a turn's frames leave the server (turns.encode, TurnManager.follow), without a model.

The reference server frames SSE by hand instead of FastAPI's EventSourceResponse (notebook 11
measures why): these tests guard what that framing must keep doing. Frames are written to an
in-memory replay store directly, as a running turn does.
"""

from __future__ import annotations

import asyncio

import pytest

from reference_server.replay import Frame, InMemoryReplayStore
from reference_server.turns import PING, TurnManager, encode


def manager(keepalive_s: float = 15.0) -> tuple[TurnManager, InMemoryReplayStore]:
    store = InMemoryReplayStore()
    return TurnManager(runner=None, store=store, run_config=None, keepalive_s=keepalive_s), store


async def collect(agen) -> list[bytes]:
    return [chunk async for chunk in agen]


def test_encode_is_one_sse_message_per_frame():
    assert encode(Frame(3, None, '{"a":1}')) == b'id: 3\ndata: {"a":1}\n\n'
    assert encode(Frame(9, "done", '{"events":8}')) == b'id: 9\nevent: done\ndata: {"events":8}\n\n'
    # A newline in data would end the field: each line becomes its own data: field.
    assert encode(Frame(1, None, "a\nb")) == b"id: 1\ndata: a\ndata: b\n\n"


async def test_frames_ready_together_leave_in_one_write():
    turns, store = manager()
    await store.open_turn("s", "t")
    frames = [Frame(i, None, f'{{"n":{i}}}') for i in range(1, 41)] + [Frame(41, "done", "{}")]
    for frame in frames:
        await store.append("s", "t", frame)
    chunks = await collect(turns.follow("s"))
    assert chunks == [b"".join(encode(f) for f in frames)]  # one chunk: one write, one packet burst
    assert await collect(turns.follow("s", after=39)) == [encode(frames[39]) + encode(frames[40])]


async def test_live_frames_follow_in_order_and_stop_at_the_terminal_frame():
    turns, store = manager()
    await store.open_turn("s", "t")

    async def produce():
        for i in range(1, 6):
            await store.append("s", "t", Frame(i, None, str(i)))
            await asyncio.sleep(0.01)
        await store.append("s", "t", Frame(6, "done", "{}"))

    producer = asyncio.create_task(produce())
    body = b"".join(await collect(turns.follow("s")))
    await producer
    assert body == b"".join(encode(f) for f in [*(Frame(i, None, str(i)) for i in range(1, 6)),
                                                 Frame(6, "done", "{}")])


async def test_an_idle_stream_gets_pings_then_its_frames():
    turns, store = manager(keepalive_s=0.05)
    await store.open_turn("s", "t")

    async def late():
        await asyncio.sleep(0.18)
        await store.append("s", "t", Frame(1, "done", "{}"))

    producer = asyncio.create_task(late())
    chunks = await collect(turns.follow("s"))
    await producer
    assert chunks[-1] == encode(Frame(1, "done", "{}"))
    assert 2 <= chunks.count(PING) <= 4, chunks
    assert set(chunks[:-1]) == {PING}


@pytest.mark.parametrize("after", [0, 2])
async def test_follow_ends_when_a_new_turn_replaces_the_one_it_reads(after):
    turns, store = manager()
    await store.open_turn("s", "t1")
    for i in (1, 2):
        await store.append("s", "t1", Frame(i, None, str(i)))

    async def replace():
        await asyncio.sleep(0.05)
        await store.open_turn("s", "t2")

    task = asyncio.create_task(replace())
    body = b"".join(await asyncio.wait_for(collect(turns.follow("s", after=after)), 5))
    await task
    assert body == b"".join(encode(Frame(i, None, str(i))) for i in (1, 2) if i > after)
