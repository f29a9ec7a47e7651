"""An offline, wire-faithful stand-in for the Gemini API.

The real google-genai client (and so ADK's ``Gemini`` model) talks HTTP SSE to it when
``GOOGLE_GEMINI_BASE_URL`` points at it. Start it in process::

    from workshop.gemini_emulator import start_emulator
    with start_emulator(first_token_s=0, chunk_s=0) as emulator:
        print(emulator.url)

or standalone: ``python -m workshop.gemini_emulator --host 127.0.0.1 --port 8089``.
What it answers: rules.py. Faults on demand: faults.py. The bytes it sends: wire.py.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import replace
from typing import Any

from .faults import Fault, FaultSpecError
from .rules import FunctionCall, Reply, plan_reply
from .server import EmulatorState, Pacing, RequestRecord, serve

__all__ = [
    "EmulatorHandle",
    "Fault",
    "FaultSpecError",
    "FunctionCall",
    "Pacing",
    "Reply",
    "RequestRecord",
    "default_pacing",
    "plan_reply",
    "start_emulator",
]


def default_pacing() -> Pacing:
    """Realistic pacing and chunk sizes, overridable by WORKSHOP_EMULATOR_FIRST_TOKEN_S,
    _CHUNK_S, _CHUNK_CHARS and _WORDS_PER_CHUNK (> 0: word-sized chunks instead)."""
    pacing = Pacing()
    return replace(
        pacing,
        first_token_s=float(os.environ.get("WORKSHOP_EMULATOR_FIRST_TOKEN_S", pacing.first_token_s)),
        chunk_s=float(os.environ.get("WORKSHOP_EMULATOR_CHUNK_S", pacing.chunk_s)),
        words_per_chunk=int(os.environ.get("WORKSHOP_EMULATOR_WORDS_PER_CHUNK", pacing.words_per_chunk)),
        chunk_chars=int(os.environ.get("WORKSHOP_EMULATOR_CHUNK_CHARS", pacing.chunk_chars)),
    )


class EmulatorHandle:
    """A running emulator on its own thread and event loop. ``stop()`` frees both."""

    def __init__(self, state: EmulatorState, host: str, port: int) -> None:
        self.state = state
        self.host = host
        self.port = port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gemini-emulator", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- life cycle -------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(serve(self.state, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._server.connection_tasks):  # type: ignore[attr-defined]
            task.cancel()
        await asyncio.gather(*self._server.connection_tasks, return_exceptions=True)  # type: ignore[attr-defined]
        await self._server.wait_closed()

    def start(self) -> EmulatorHandle:
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._error is not None:
            raise RuntimeError(f"the Gemini emulator could not start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        """Close the port and every connection, then end the thread."""
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- controls (thread-safe enough: each is one call on the emulator's loop) ---------
    def _call(self, fn, *args) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(fn, *args), self._loop)
        return future.result(timeout=10)

    def set_pacing(self, first_token_s: float | None = None, chunk_s: float | None = None,
                   words_per_chunk: int | None = None, chunk_chars: int | None = None) -> Pacing:
        """Change pacing or chunk sizes; ``words_per_chunk=0`` goes back to the real API's
        sizes (about ``chunk_chars`` characters a chunk)."""
        changes = {k: v for k, v in dict(first_token_s=first_token_s, chunk_s=chunk_s,
                                         words_per_chunk=words_per_chunk,
                                         chunk_chars=chunk_chars).items() if v is not None}
        self._call(lambda: setattr(self.state, "pacing", replace(self.state.pacing, **changes)))
        return self.state.pacing

    def arm_fault(self, spec: str, count: int = 1) -> None:
        """Make the next ``count`` model requests fail as SPEC says (faults.py)."""
        fault = Fault.parse(spec)
        self._call(lambda: self.state.armed.extend([fault] * count))

    def script(self, *replies: Reply | dict) -> None:
        """Queue replies for the next requests, in order, instead of the rules."""
        parsed = [r if isinstance(r, Reply) else Reply.from_dict(r) for r in replies]
        self._call(lambda: self.state.scripted.extend(parsed))

    def reset(self) -> None:
        self._call(self.state.reset)

    @property
    def requests(self) -> list[RequestRecord]:
        """The model requests seen so far (newest last; at most 500 kept)."""
        return self._call(lambda: list(self.state.log))

    def stats(self) -> dict[str, Any]:
        return self._call(self.state.stats)


async def _as_coroutine(fn, *args) -> Any:
    return fn(*args)


def start_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    first_token_s: float | None = None,
    chunk_s: float | None = None,
    words_per_chunk: int | None = None,
    chunk_chars: int | None = None,
) -> EmulatorHandle:
    """Start the emulator on a background thread (port 0: a free port) and return its handle."""
    pacing = default_pacing()
    if first_token_s is not None:
        pacing.first_token_s = first_token_s
    if chunk_s is not None:
        pacing.chunk_s = chunk_s
    if words_per_chunk is not None:
        pacing.words_per_chunk = words_per_chunk
    if chunk_chars is not None:
        pacing.chunk_chars = chunk_chars
    return EmulatorHandle(EmulatorState(pacing), host, port).start()
