"""ADK events -> SSE frames: one frame per event, ``id:`` 1, 2, ..., then ``done`` or ``error``."""

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

from .errors import classify_error_code, classify_exception, error_frame
from .redaction import event_json

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

    Events are serialized here as ADK's own ``/run_sse`` does (``redaction.event_json``:
    credential secrets and ADK's internal metadata removed), camelCase aliases, no nulls. An event
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
            yield ServerSentEvent(raw_data=event_json(event), id=str(frame_id))  # as ADK's /run_sse
            if event.error_code:
                yield error_frame(classify_error_code(event.error_code), frame_id + 1)
                return
    except Exception as exc:  # after the first byte the status is 200: report in band
        logger.warning("stream failed after %d frames", frame_id, exc_info=exc)
        yield error_frame(classify_exception(exc), frame_id + 1)
        return
    yield ServerSentEvent(event="done", raw_data=json.dumps({"events": frame_id}), id=str(frame_id + 1))
