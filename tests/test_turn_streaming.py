"""How a turn's frames leave the server (Frame.encode, TurnManager.follow), without a model.

The reference server frames SSE by hand instead of FastAPI's EventSourceResponse (notebook 11
measures why): these tests guard what that framing must keep doing. Frames are written to an
in-memory replay store directly, as a running turn does.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi.sse import format_sse_event
from httpx_sse import EventSource

from reference_server.replay import Frame, InMemoryReplayStore
from reference_server.turns import PING, TurnManager


def manager(keepalive_s: float = 15.0) -> tuple[TurnManager, InMemoryReplayStore]:
    store = InMemoryReplayStore()
    return TurnManager(runner=None, store=store, run_config=None, keepalive_s=keepalive_s), store


async def collect(agen) -> list[bytes]:
    return [chunk async for chunk in agen]


def test_encode_is_one_sse_message_per_frame():
    assert Frame(3, "event", '{"a":1}').encode() == b'id: 3\ndata: {"a":1}\n\n'
    assert Frame(9, "done", '{"events":8}').encode() == b'id: 9\nevent: done\ndata: {"events":8}\n\n'
    # A line end in data would end the field: each line becomes its own data: field.
    assert Frame(1, "event", "a\nb").encode() == b"id: 1\ndata: a\ndata: b\n\n"


@pytest.mark.parametrize("data", ["a\nb", "a\rb", "a\r\nb", "a\n\nb", "\r\n", "a\r\rb\n", "x\u2028y",
                                  "trailing\r", "", '{"text": "Grüße 😀"}'])
def test_encode_splits_lines_like_the_standard_and_fastapi(data):
    """\r, \r\n and \n all end a line in SSE: what a client reassembles (joining the data
    lines with \n) is the data with its line ends normalized to \n, as FastAPI's encoder does;
    a lone \r left in a data line would end it early in every standard parser."""
    encoded = Frame(7, "error", data, "INTERNAL").encode()
    assert data_lines(encoded) == data_lines(format_sse_event(data_str=data, event="error", id="7"))
    decoded = list(EventSource(as_response(encoded)).iter_sse())
    assert [(s.id, s.event, s.data) for s in decoded] == [
        ("7", "error", data.replace("\r\n", "\n").replace("\r", "\n"))]


def data_lines(encoded: bytes) -> list[bytes]:
    return [line for line in encoded.split(b"\n") if line.startswith(b"data")]


def as_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def test_the_keepalive_is_a_comment_line_that_no_client_dispatches():
    """After a frame, ``: ping`` then a blank line made httpx-sse (and fetch-event-source)
    dispatch an empty message carrying the last id; a bare comment line dispatches nothing."""
    frames = [Frame(1, "event", '{"n": 1}'), Frame(2, "done", "{}")]
    body = frames[0].encode() + PING * 3 + frames[1].encode()
    assert PING == b": ping\n"
    seen = list(EventSource(as_response(body)).iter_sse())
    assert [(s.id, s.event, s.data) for s in seen] == [("1", "message", '{"n": 1}'), ("2", "done", "{}")]
    old = frames[0].encode() + b": ping\n\n" + frames[1].encode()  # what the server sent before
    assert [s.data for s in EventSource(as_response(old)).iter_sse()] == ['{"n": 1}', "", "{}"]


async def test_begin_turn_is_atomic_one_winner_among_racers():
    store = InMemoryReplayStore()
    results = await asyncio.gather(*(store.begin_turn("s", f"t{i}") for i in range(8)))
    assert results.count(True) == 1
    winner = f"t{results.index(True)}"
    assert (await store.read("s", 0)).turn_id == winner
    assert not await store.begin_turn("s", "late")  # still running
    await store.append("s", winner, Frame(1, "done", "{}"))
    assert await store.begin_turn("s", "next")  # ended: the next turn may start
    assert (await store.read("s", 0)).frames == []


async def test_frames_ready_together_leave_in_one_write():
    turns, store = manager()
    await store.begin_turn("s", "t")
    frames = [Frame(i, "event", f'{{"n":{i}}}') for i in range(1, 41)] + [Frame(41, "done", "{}")]
    for frame in frames:
        await store.append("s", "t", frame)
    chunks = await collect(turns.follow("s"))
    assert chunks == [b"".join(f.encode() for f in frames)]  # one chunk: one write, one packet burst
    assert await collect(turns.follow("s", after=39)) == [frames[39].encode() + frames[40].encode()]


async def test_live_frames_follow_in_order_and_stop_at_the_terminal_frame():
    turns, store = manager()
    await store.begin_turn("s", "t")

    async def produce():
        for i in range(1, 6):
            await store.append("s", "t", Frame(i, "event", str(i)))
            await asyncio.sleep(0.01)
        await store.append("s", "t", Frame(6, "done", "{}"))

    producer = asyncio.create_task(produce())
    body = b"".join(await collect(turns.follow("s")))
    await producer
    assert body == b"".join(f.encode() for f in [*(Frame(i, "event", str(i)) for i in range(1, 6)),
                                                 Frame(6, "done", "{}")])


async def test_an_idle_stream_gets_pings_then_its_frames():
    turns, store = manager(keepalive_s=0.05)
    await store.begin_turn("s", "t")
    chunks = []
    # The frame comes once two pings have gone (paced by the pings, not by a sleep that a
    # paused process can let both timers outrun).
    async for chunk in turns.follow("s"):
        chunks.append(chunk)
        if chunk == PING and chunks.count(PING) == 2:
            await store.append("s", "t", Frame(1, "done", "{}"))
    assert chunks[-1] == Frame(1, "done", "{}").encode()
    assert chunks.count(PING) >= 2 and set(chunks[:-1]) == {PING}, chunks


async def test_a_running_turn_is_never_replaced_under_its_readers():
    turns, store = manager()
    await store.begin_turn("s", "t1")
    for i in (1, 2):
        await store.append("s", "t1", Frame(i, "event", str(i)))
    assert not await store.begin_turn("s", "t2")

    async def finish():
        await asyncio.sleep(0.05)
        await store.append("s", "t1", Frame(3, "done", "{}"))

    task = asyncio.create_task(finish())
    body = b"".join(await asyncio.wait_for(collect(turns.follow("s", after=1)), 5))
    await task
    assert body == Frame(2, "event", "2").encode() + Frame(3, "done", "{}").encode()
