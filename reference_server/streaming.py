"""ADK events -> SSE frames: one frame per event, ``id:`` 1, 2, ..., then ``done`` or ``error``.

``event_frames`` is the server's: it yields ``replay.Frame`` objects (kind and error code as
fields; ``Frame.encode`` makes the bytes), and ``event_frame`` is the one place where an ADK
event becomes a frame. ``sse_frames`` and ``in_own_task`` are notebook 05's endpoint for
FastAPI's ``EventSourceResponse`` (same rules, ``ServerSentEvent`` items); notebooks 05 and 10
import them from here, the server does not use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import TypeVar

import anyio
from fastapi.sse import ServerSentEvent
from google.adk.events import Event

from .errors import STREAM_ERRORS, classify_error_code, classify_exception, error_body, error_frame
from .replay import EVENT, Frame

logger = logging.getLogger("reference_server")

T = TypeVar("T")
_END = object()


async def in_own_task(agen: AsyncGenerator[T, None], close_timeout_s: float = 5.0) -> AsyncIterator[T]:
    """Iterate ``agen`` (e.g. ``runner.run_async(...)``) in its own asyncio task.

    Closing this generator (a client that went away) cancels that task, which closes
    ``agen`` with ``contextlib.aclosing`` and so ADK's model request, and waits for it.
    Why a task: FastAPI's SSE stops a stream through an anyio cancel scope, which cancels
    *every* await until the scope ends, cleanup included; iterated in the request's own
    task, ADK's cleanup is cancelled half-way and the model's HTTP stream stays open.
    ADK's own ``/run_sse`` uses a producer task the same way.
    """
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async with contextlib.aclosing(agen) as items:
                async for item in items:
                    await queue.put((item, None))
        except Exception as exc:  # handed to the reader, raised there
            await queue.put((_END, exc))
        else:
            await queue.put((_END, None))

    task = asyncio.create_task(pump(), name="adk-run")
    try:
        while True:
            item, error = await queue.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait([task], timeout=close_timeout_s)


async def sse_frames(events: AsyncIterable[Event]) -> AsyncIterator[ServerSentEvent]:
    """Each ADK event as one frame (``id:`` 1, 2, ...), then ``event: done``; or ``event: error``.

    Events are serialized here, by ADK's own model: camelCase aliases, no nulls. An event
    carrying ``error_code`` (a model error, a finish reason such as MAX_TOKENS, a tool's
    exception) is sent without its ``error_message`` (ADK puts ``str(exception)`` there),
    then an error frame ends the stream; so does an exception. Cancellation (the client went
    away) is not an ``Exception``: it passes through.
    """
    frame_id = 0
    try:
        async for event in events:
            frame_id += 1
            if event.error_code:  # error_message holds str(exception): internals, not for clients
                event = event.model_copy(update={"error_message": None})
            yield ServerSentEvent(
                raw_data=event.model_dump_json(exclude_none=True, by_alias=True), id=str(frame_id)
            )
            if event.error_code:
                yield error_frame(classify_error_code(event.error_code), frame_id + 1)
                return
    except Exception as exc:  # after the first byte the status is 200: report in band
        logger.warning("stream failed after %d frames", frame_id, exc_info=exc)
        yield error_frame(classify_exception(exc), frame_id + 1)
        return
    yield ServerSentEvent(event="done", raw_data=json.dumps({"events": frame_id}), id=str(frame_id + 1))


def event_frame(event: Event, frame_id: int) -> Frame:
    """The one place where an ADK event becomes a frame: serialized by ADK's own model
    (camelCase aliases, no nulls), without ``error_message`` (ADK puts ``str(exception)``
    there: internals, not for clients); ADK's ``error_code`` becomes the frame's ``code``."""
    if event.error_code:
        event = event.model_copy(update={"error_message": None})
    return Frame(frame_id, EVENT, event.model_dump_json(exclude_none=True, by_alias=True),
                 event.error_code)


def failure_frame(code: str, frame_id: int, message: str | None = None) -> Frame:
    """The in-band error: ``event: error`` with ``{"error": {"code", "message"}}``."""
    return Frame(frame_id, "error", json.dumps(error_body(code, message or STREAM_ERRORS[code])), code)


async def event_frames(events: AsyncIterable[Event]) -> AsyncIterator[Frame]:
    """Each ADK event as one frame (ids 1, 2, ...), then ``done``; or an ``error`` frame: after
    an event carrying ``error_code`` (a model error, a finish reason such as MAX_TOKENS, a
    tool's exception), or for an exception. Cancellation is not an ``Exception``: it passes."""
    frame_id = 0
    try:
        async for event in events:
            frame_id += 1
            frame = event_frame(event, frame_id)
            yield frame
            if frame.code:
                yield failure_frame(classify_error_code(frame.code), frame_id + 1)
                return
    except Exception as exc:  # after the first byte the status is 200: report in band
        logger.warning("stream failed after %d frames", frame_id, exc_info=exc)
        yield failure_frame(classify_exception(exc), frame_id + 1)
        return
    yield Frame(frame_id + 1, "done", json.dumps({"events": frame_id}))
