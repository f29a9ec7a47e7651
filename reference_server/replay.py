"""Where a turn's SSE frames wait for a client to (re)read them: the replay buffer.

Every frame of a turn is appended here as it is produced, *before* any client reads it; a
client reads the frames after the last ``id:`` it saw (0 for a new stream), then waits for
more. That one path serves the first client of a turn and one that resumes with
``Last-Event-ID``, so a resumed stream can neither lose nor repeat a frame.

A store keeps, per session, only its *latest* turn. When a turn has ended (its terminal
frame is in), its frames stay readable for ``ttl_s`` seconds, then they are dropped.

``ReplayStore`` is the interface; ``InMemoryReplayStore`` keeps frames in this process
(one server process). Several processes behind one port need a shared implementation
(a database table or Redis, keyed by session) of the same five methods (``begin_turn`` an
atomic compare-and-set there too), and of the turn state below (``shared = True``), which lets every process see which turn is running (the 409), ask
its owner to cancel it, and tell it that a client follows it from elsewhere (the grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

# A frame's kind: an ADK event (sent without an ``event:`` line, so a client reads it as a plain
# "message"); any other kind ("done", "error", "cancelled") is the terminal frame of a turn.
EVENT = "event"


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE frame, from the ADK event (or the turn's end) to the bytes on the wire: the one
    representation the server stores, replays and sends.

    ``id``: 1, 2, ... within a turn. ``kind``: ``"event"`` (an ADK event) or ``"done"``,
    ``"error"``, ``"cancelled"`` (the turn's terminal frame). ``data``: the JSON text after
    ``data:``. ``code``: for an ``error`` frame, its error code (the one in ``data``); for an
    ``event`` frame, ADK's ``error_code`` when the event carries one (an error frame follows it).
    """

    id: int
    kind: str
    data: str
    code: str | None = None

    @property
    def terminal(self) -> bool:
        return self.kind != EVENT

    def encode(self) -> bytes:
        """The frame as SSE bytes: ``id:``, ``event:`` unless an ADK event, one ``data:`` line
        per line of ``data`` (split on ``\r\n``, ``\r`` and ``\n``, the three line ends of the
        SSE standard, as FastAPI's ``format_sse_event`` does), then the blank line."""
        event = "" if self.kind == EVENT else f"event: {self.kind}\n"
        data = self.data
        if "\r" in data or "\n" in data:  # JSON text has none: the fast path is one line
            data = data.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\ndata: ")
        return f"id: {self.id}\n{event}data: {data}\n\n".encode()


@dataclass
class Tail:
    """What ``read`` returns: the turn, its frames after the id asked for, whether the turn
    has ended (its terminal frame is the last of ``frames`` or was read before), and the
    ``Idempotency-Key`` of the message that started it (None: none was sent)."""

    turn_id: str
    frames: list[Frame]
    finished: bool
    key: str | None = None


@dataclass
class TurnState:
    """A turn as every process sees it (shared stores): ``owner_age_s``, seconds since the
    process running it last said it was alive; ``reader_age_s``, since a client following it
    from another process was last seen (None: never)."""

    turn_id: str
    ended: bool
    owner_age_s: float
    reader_age_s: float | None
    cancel_requested: bool


class ReplayStore(ABC):
    """The replay buffer of each session's latest turn."""

    shared = False  # True: other processes use the same store (and the turn state methods)

    @abstractmethod
    async def begin_turn(self, session_id: str, turn_id: str, *, owner_stale_s: float,
                         key: str | None = None) -> bool:
        """Start ``turn_id`` (for the message with Idempotency-Key ``key``, if it had one) in
        the session, as one atomic step: False (and nothing changes) if
        the session's latest turn is still running; else the previous turn's frames are
        forgotten and True. This is the only thing that makes "one turn per session" hold
        when requests race (in one process or several). A shared store also takes over a
        turn whose owner has not checked in for ``owner_stale_s`` seconds (its process died)."""

    @abstractmethod
    async def append(self, session_id: str, turn_id: str, frame: Frame) -> None:
        """Add the turn's next frame (ids in order, no gap). A terminal frame ends the turn
        and starts its time to live."""

    @abstractmethod
    async def read(self, session_id: str, after: int) -> Tail | None:
        """The latest turn's frames with ``id > after``; None if the session has no turn
        in the store (never had one, or it expired)."""

    @abstractmethod
    async def wait(self, session_id: str, after: int, timeout: float) -> None:
        """Return when a frame with ``id > after`` may be there, or after ``timeout`` s."""

    @abstractmethod
    async def purge(self) -> int:
        """Drop the turns whose time to live is over; how many were dropped."""

    # Turn state shared by processes. One process knows it all itself: these do nothing.
    async def turn_state(self, session_id: str) -> TurnState | None:
        """The session's latest turn as all processes see it; None if unknown."""
        return None

    async def owner_alive(self, session_ids: list[str], beat: bool) -> set[str]:
        """The owning process's check-in for its running turns: with ``beat``, record that it is
        alive; returns the sessions whose turn another process asked to cancel."""
        return set()

    async def mark(self, session_id: str, turn_id: str, *, reader: bool = False,
                   cancel: bool = False) -> None:
        """Record that a client follows the turn from this process (``reader``), or that a
        client asked this process to cancel it (``cancel``)."""
        return None

    # True: ``cancel_asked`` returns as soon as a cancel is asked (the store pushes it), so the
    # owner's check-ins need not poll for cancels.
    pushes_cancels = False

    async def cancel_asked(self, session_ids: list[str], timeout: float) -> None:
        """Return when another process may have asked to cancel one of these turns (then
        ``owner_alive`` says which), or after ``timeout`` s. By default: after ``timeout``."""
        await asyncio.sleep(timeout)

    async def close(self) -> None:
        """Release connections (server shutdown; the app's lifespan calls it)."""
        return None


@dataclass
class _Log:
    turn_id: str
    key: str | None = None
    frames: list[Frame] = field(default_factory=list)
    ended_at: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class InMemoryReplayStore(ReplayStore):
    """Frames in this process's memory; ended turns are dropped ``ttl_s`` after their end."""

    def __init__(self, ttl_s: float = 300.0, clock=time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._logs: dict[str, _Log] = {}
        # Sessions whose turn has ended, oldest end first: purge stops at the first one still
        # alive, so it costs what it drops, not a scan of every session.
        self._ended: dict[str, float] = {}

    def _expired(self, log: _Log) -> bool:
        return log.ended_at is not None and self._clock() - log.ended_at > self.ttl_s

    async def begin_turn(self, session_id: str, turn_id: str, *, owner_stale_s: float = 0,
                         key: str | None = None) -> bool:
        # No await between the check and the write: atomic for every task of this event loop.
        old = self._logs.get(session_id)
        if old is not None and old.ended_at is None:
            return False
        self._logs[session_id] = _Log(turn_id, key)
        self._ended.pop(session_id, None)
        if old is not None:
            old.changed.set()  # wake readers of the old turn: it is gone
        await self.purge()
        return True

    async def append(self, session_id: str, turn_id: str, frame: Frame) -> None:
        log = self._logs.get(session_id)
        if log is None or log.turn_id != turn_id or log.ended_at is not None:
            return  # the turn was replaced or already ended: nothing to add to
        expected = log.frames[-1].id + 1 if log.frames else 1
        if frame.id != expected:
            raise ValueError(f"frame id {frame.id} out of order (expected {expected})")
        log.frames.append(frame)
        if frame.terminal:
            log.ended_at = self._ended[session_id] = self._clock()
        log.changed.set()
        log.changed = asyncio.Event()

    async def read(self, session_id: str, after: int) -> Tail | None:
        log = self._logs.get(session_id)
        if log is None or self._expired(log):
            self._logs.pop(session_id, None)
            return None
        frames = [f for f in log.frames[max(after, 0):] if f.id > after]
        return Tail(log.turn_id, frames, log.ended_at is not None, log.key)

    async def wait(self, session_id: str, after: int, timeout: float) -> None:
        log = self._logs.get(session_id)
        if log is None or (log.frames and log.frames[-1].id > after) or log.ended_at is not None:
            return
        changed = log.changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # not wait_for: no task per frame
                await changed.wait()

    async def purge(self) -> int:
        dropped = 0
        cutoff = self._clock() - self.ttl_s
        while self._ended:
            session_id, ended_at = next(iter(self._ended.items()))
            if ended_at >= cutoff:
                break
            del self._ended[session_id]
            self._logs.pop(session_id, None)
            dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._logs)
