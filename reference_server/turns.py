"""A turn runs in its own task, not in the request that started it.

``TurnManager.start`` runs ``runner.run_async(...)`` in a background task that writes every
SSE frame to a ``ReplayStore``; a request only *follows* the store (``follow``). So:

- the first client, and a client that resumes with ``Last-Event-ID``, read the same frames;
- a dropped connection does not stop the turn: with no client attached it keeps running for
  ``grace_s`` seconds (so the client can resume); if none is attached by then, it is
  cancelled, and the model's HTTP stream is closed;
- ``cancel`` (``POST /api/sessions/{id}/cancel``) stops it at once: ADK's ``abort_signal``
  is set, so ADK stops and persists an event with ``error_code="INVOCATION_ABORTED"``; the
  model request is closed (by ADK, or by the turn when ADK leaves it open: model_responses.py);
  the stream ends with ``event: cancelled``;
- one turn per session at a time: ``start`` claims the session in the store in one atomic
  step (``ReplayStore.begin_turn``), so of N messages racing for one session, in one process
  or several, exactly one starts a turn and the others get None (the 409);
- a turn whose model fails before its first event (429/503 after retries, answered 503 before
  the first byte) is rewound in the session (ADK's ``Runner.rewind_async``): the user's
  message no longer counts, so sending it again does not put it twice in the history.

Several processes sharing a store (``ReplayStore.shared``, e.g. the database store): the
process that runs a turn (its *owner*) checks in every ``OWNER_BEAT_S`` and polls every
``WATCH_S`` for a cancel asked on another process (a store that pushes cancels wakes it at
once instead: Redis, and PostgreSQL through ``NOTIFY``); any process answers 409 while the
owner is alive, turns a cancel into a
request to the owner (and answers once the turn's terminal frame is in), and
marks a client that follows the turn from there, which keeps the owner's grace period from
ending. A turn whose owner has not checked in for ``OWNER_STALE_S`` (the process died) is
sealed by the next reader with ``event: error`` ``TURN_LOST``, and the session takes new
messages again.

What the session keeps of a turn cut short (cancelled, or abandoned after the grace period):
the user's message and ADK's ``INVOCATION_ABORTED`` event, not the partial answer (ADK does
not persist partial events). The next turn's model request therefore holds the question,
no half answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from google.adk.agents.invocation_context import LlmCallsLimitExceededError
from google.adk.agents.run_config import RunConfig
from google.adk.events import Event
from google.adk.runners import Runner
from google.genai import types

from .drain import RESTARTING, restarting_frame_data
from .model_responses import closing_model_responses
from .observability import Observability, TurnRecord
from .quotas import TURN_TOKEN_LIMIT, TURN_TOKEN_LIMIT_MESSAGE, TurnMeter
from .replay import EVENT, Frame, ReplayStore, Tail, TurnState
from .streaming import event_frames, failure_frame

logger = logging.getLogger("reference_server")

LIMIT_EXCEEDED = LlmCallsLimitExceededError.__name__  # ADK's error_code when max_llm_calls is hit
ABORTED = "INVOCATION_ABORTED"  # ADK's error_code of the event that seals an aborted run
# Codes that mean "the model could not start": answered 503 before the first byte.
NOT_STARTED = ("RATE_LIMITED", "MODEL_UNAVAILABLE")
# Processes sharing a store (seconds): see the module's docstring.
WATCH_S = 0.25
OWNER_BEAT_S = 1.0
OWNER_STALE_S = 15.0
READER_BEAT_S = 1.0
READER_FRESH_S = 3.0
# The turn's task and its followers share one event loop (see TurnManager._produce's hand_over):
# how long the first frame of content waits for a follower to send it, and how long the task
# then writes frames before it lets the followers send them.
FIRST_FRAME_HANDOVER_S = 0.1
YIELD_EVERY_S = 0.005


# Error codes of a turn, besides errors.STREAM_ERRORS (the codes notebook 05 builds).
TURN_ERRORS = {
    "TOO_MANY_MODEL_CALLS": "The agent reached its limit of model calls for one message "
                            "(RunConfig.max_llm_calls) before it could answer.",
    "TURN_LOST": "The server process that was answering stopped before it finished. "
                 "Send the message again.",
    TURN_TOKEN_LIMIT: TURN_TOKEN_LIMIT_MESSAGE,  # quotas.py: WORKSHOP_MAX_TOKENS_PER_TURN
}

# An idle stream gets a keep-alive comment this often (proxies close silent connections). A
# comment line alone, with no blank line after it: the SSE standard ignores comment lines, and
# a blank line would make httpx-sse and fetch-event-source dispatch an empty message (they
# dispatch on a blank line even when no field came before it).
KEEPALIVE_S = 15.0
PING = b": ping\n"


def not_started(frames: list[Frame]) -> str | None:
    """The error code if these frames (a whole turn) show a model that failed before its first
    event (429/503 after retries): no frame of content, only ADK's error event, then the error."""
    if not frames or frames[-1].kind != "error" or frames[-1].code not in NOT_STARTED:
        return None
    return None if any(f.kind == EVENT and f.code is None for f in frames) else frames[-1].code


def live_events(events: list[Event]) -> list[Event]:
    """A session's events without those ADK treats as rewound (a message whose model failed
    before the first byte, see ``TurnManager._rewind``): the conversation as the model sees it,
    and as a page that shows the history should. ADK's own rule (its one source of truth, used
    for prompts and compaction; private in google-adk 2.13, hence this one import)."""
    from google.adk.events._rewind_events import _apply_rewinds

    return _apply_rewinds(events)


def _owner_alive(state: TurnState | None) -> bool:
    """Shared store: the turn is running on a process that checked in recently."""
    return state is not None and not state.ended and state.owner_age_s < OWNER_STALE_S


@dataclass
class Turn:
    """One running (or finished) turn of a session, as seen from this process."""

    user_id: str
    session_id: str
    turn_id: str
    abort: asyncio.Event = field(default_factory=asyncio.Event)
    decided: asyncio.Event = field(default_factory=asyncio.Event)  # content, or the end
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: str | None = None
    content_started: bool = False
    invocation_id: str | None = None  # ADK's, from the turn's first event
    terminal: Frame | None = None
    waiting: asyncio.Timeout | None = None  # set while the turn waits for ADK's next event
    interrupted: bool = False  # `cancel` stopped waiting for ADK to end by itself
    attached: int = 0
    taken: asyncio.Event = field(default_factory=asyncio.Event)  # a follower sent frames of it
    task: asyncio.Task | None = None
    grace_task: asyncio.Task | None = None
    record: TurnRecord | None = None  # what observability.py sees of it, while it runs

    @property
    def running(self) -> bool:
        return not self.finished.is_set()

    def failed_before_first_byte(self) -> str | None:
        """The stream error code if the model never started (429/503 after retries)."""
        if self.content_started or self.terminal is None or self.terminal.kind != "error":
            return None
        return self.terminal.code if self.terminal.code in NOT_STARTED else None


class TurnManager:
    """Starts, follows and cancels the turns of one server process."""

    def __init__(self, runner: Runner, store: ReplayStore, run_config: RunConfig, *,
                 grace_s: float = 30.0, abort_wait_s: float = 0.25,
                 keepalive_s: float = KEEPALIVE_S, observability: Observability | None = None,
                 meter: Callable[[str], TurnMeter | None] | None = None) -> None:
        self.runner = runner
        self.meter = meter  # quotas.py: a turn's tokens, per user (None: not limited)
        self.observability = observability or Observability()  # metrics off, spans on
        self.store = store
        self.run_config = run_config
        self.grace_s = grace_s
        self.abort_wait_s = abort_wait_s
        self.keepalive_s = keepalive_s
        self.turns: dict[str, Turn] = {}  # session id -> its latest turn in this process
        # Set at the end of a drain (drain.py): streams following a turn that runs on another
        # process end (no terminal frame: the client resumes, on a process that stays).
        self.closing = False
        self._watcher: asyncio.Task | None = None  # shared store: check-ins and remote cancels

    def running(self, session_id: str) -> Turn | None:
        turn = self.turns.get(session_id)
        return turn if turn is not None and turn.running else None

    def all_running(self) -> list[Turn]:
        """The turns running in this process (a shutdown or a drain ends them)."""
        return [turn for turn in list(self.turns.values()) if turn.running]

    async def refuses_new_turn(self, session_id: str) -> bool:
        """What ``start`` would refuse, read without claiming anything (the 409's pre-check,
        before a limit counts the message): a turn of the session here that has not written
        its terminal frame (the store's rule: a client may send its next message as soon as
        it reads ``done``), or (shared store) one running on a process that is alive. One
        store read per message on a shared store; ``start`` still decides, atomically."""
        turn = self.running(session_id)
        if turn is not None:
            return turn.terminal is None
        return self.store.shared and _owner_alive(await self.store.turn_state(session_id))

    async def is_running(self, session_id: str) -> bool:
        """A turn of the session is running, here or (shared store) on a process that is alive."""
        if self.running(session_id) is not None:
            return True
        return self.store.shared and _owner_alive(await self.store.turn_state(session_id))

    async def start(self, user_id: str, session_id: str, text: str,
                    key: str | None = None, rewind_before: str | None = None) -> Turn | None:
        """Start a turn (for the message with Idempotency-Key ``key``, if any), or None if one
        of the session is running (here, or on another process sharing the store): the store's
        ``begin_turn`` decides, atomically. ``rewind_before``: an invocation id; the session is
        first rewound to before it (ADK's ``Runner.rewind_async``), inside the turn, so that a
        regenerated answer replaces the old one and what followed it."""
        turn = Turn(user_id, session_id, secrets.token_hex(8))
        if not await self.store.begin_turn(session_id, turn.turn_id, owner_stale_s=OWNER_STALE_S,
                                           key=key):
            return None
        self.turns[session_id] = turn
        content = types.Content(role="user", parts=[types.Part(text=text)])
        run = self.runner.run_async(user_id=user_id, session_id=session_id, new_message=content,
                                    run_config=self.run_config, abort_signal=turn.abort)
        if rewind_before is not None:
            run = self._after_rewind(turn, rewind_before, run)
        # The grace period starts when the last client detaches (``follow``), not here: the
        # request that started the turn follows it as soon as the stream opens.
        turn.task = asyncio.create_task(self._observed(turn, run), name=f"turn-{turn.turn_id}")
        if self.store.shared and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.create_task(self._watch(), name="turn-watcher")
        return turn

    async def cancel_elsewhere(self, session_id: str, timeout_s: float = 5.0) -> bool:
        """Shared store: ask the process running the session's turn to cancel it and wait (at
        most ``timeout_s``) for the end; False if no turn runs on a live process."""
        state = await self.store.turn_state(session_id)
        if not _owner_alive(state):
            return False
        turn_id = state.turn_id
        await self.store.mark(session_id, turn_id, cancel=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        after = 0
        while (remaining := deadline - loop.time()) > 0:  # wait for its terminal frame
            tail = await self.store.read(session_id, after)
            if tail is None or tail.finished or tail.turn_id != turn_id:
                return True
            after = tail.frames[-1].id if tail.frames else after
            await self.store.wait(session_id, after, remaining)
        return True  # asked; the owner ends it at its next check

    async def _watch(self) -> None:
        """Shared store: while this process runs turns, check in for them and pick up the
        cancels asked elsewhere."""
        loop = asyncio.get_running_loop()
        last_beat = 0.0
        while running := {sid: t for sid, t in self.turns.items() if t.running}:
            beat = loop.time() - last_beat >= OWNER_BEAT_S
            wait_s = WATCH_S
            try:
                for sid in await self.store.owner_alive(list(running), beat):
                    if running[sid].cancel_reason is None:
                        asyncio.create_task(self.cancel(running[sid], "cancel_requested"))
            except Exception:  # the database hiccuped: try again at the next tick
                logger.warning("turn watcher: the shared store failed", exc_info=True)
            else:
                last_beat = loop.time() if beat else last_beat
                if self.store.pushes_cancels:  # woken by a cancel; else next at the next beat
                    wait_s = max(WATCH_S, last_beat + OWNER_BEAT_S - loop.time())
            try:
                await self.store.cancel_asked(list(running), wait_s)
            except Exception:
                logger.warning("turn watcher: the shared store failed", exc_info=True)
                await asyncio.sleep(WATCH_S)

    async def _observed(self, turn: Turn, run) -> None:
        """The turn inside its span (ADK's own spans nest in it) and its metrics."""
        with self.observability.turn(turn.turn_id, turn.session_id) as turn.record:
            await self._produce(turn, run)

    async def _produce(self, turn: Turn, run) -> None:
        """Run the turn, appending its frames to the store. ADK is iterated right here: this
        task is the turn's own (no request's cancel scope reaches it), so ADK's cleanup on a
        cancel runs to the end without a queue and a task per frame."""
        next_id = 1
        limit_hit = False
        meter = self.meter(turn.user_id) if self.meter is not None else None
        over_budget = False

        async def events():
            nonlocal limit_hit, over_budget
            try:
                async for event in run:
                    turn.invocation_id = turn.invocation_id or event.invocation_id
                    if event.error_code == ABORTED or turn.abort.is_set():
                        return  # the stream ends with `cancelled`, not ADK's abort event
                    if event.error_code == LIMIT_EXCEEDED:
                        limit_hit = True  # reported as TOO_MANY_MODEL_CALLS, not INTERNAL
                        return
                    if meter is not None and meter.add(event):
                        over_budget = True  # the turn's token budget: stop the model here
                        turn.record.usage(event.usage_metadata)  # the call's tokens so far
                        return
                    if event.usage_metadata is not None and not event.partial:
                        turn.record.usage(event.usage_metadata)
                    yield event
            except LlmCallsLimitExceededError:  # RunConfig.max_llm_calls: a limit, not a crash
                limit_hit = True

        async def put(frame: Frame) -> None:
            nonlocal next_id
            if frame.terminal and not turn.content_started and frame.code in NOT_STARTED:
                await self._rewind(turn)  # before the end: no new turn can start meanwhile
            if frame.terminal and meter is not None:
                await meter.finish()  # the tokens count before the client sees the end
            await self.store.append(turn.session_id, turn.turn_id, frame)
            turn.record.frame(frame.kind, frame.code)
            next_id = frame.id + 1
            if frame.kind == EVENT and frame.code is None:
                turn.content_started = True
                turn.decided.set()
            if frame.terminal:
                turn.terminal = frame

        loop = asyncio.get_running_loop()
        last_yield = loop.time()

        async def hand_over(frame: Frame) -> None:
            """Let the followers send what is written. A model's burst (chunks already read)
            comes out of ADK without a pause, so without this the first frame left after the
            whole burst: time to first event was the turn's whole time (notebook 11). The first
            frame of content waits (briefly) for a follower to take it; after it, the followers
            get the loop every YIELD_EVERY_S, taking the frames written meanwhile in one write
            (ADK's /run_sse writes each event: more CPU per turn)."""
            nonlocal last_yield
            if not turn.taken.is_set() and frame.kind == EVENT and frame.code is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FIRST_FRAME_HANDOVER_S):
                        await turn.taken.wait()
            elif loop.time() - last_yield >= YIELD_EVERY_S:
                await asyncio.sleep(0)
            else:
                return
            last_yield = loop.time()

        try:
            ours = events()
            # closing_model_responses: closes the model's HTTP response if ADK leaves it open
            # (model_responses.py); aclosing(run): ADK's cleanup, which seals an aborted run.
            async with closing_model_responses(), contextlib.aclosing(run), \
                    contextlib.aclosing(ours), contextlib.aclosing(event_frames(ours)) as frames:
                while not turn.interrupted:
                    try:
                        # Only this wait for ADK can be interrupted (`cancel`), never a write to
                        # the store: a frame half-written would leave the stream without its end.
                        async with asyncio.timeout(None) as turn.waiting:
                            frame = await anext(frames)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:  # `cancel` gave up waiting for ADK to stop
                        break
                    finally:
                        turn.waiting = None
                    if turn.abort.is_set():
                        break
                    if limit_hit and frame.kind == "done":
                        frame = failure_frame("TOO_MANY_MODEL_CALLS", frame.id,
                                              TURN_ERRORS["TOO_MANY_MODEL_CALLS"])
                    if over_budget and frame.kind == "done":
                        frame = failure_frame(TURN_TOKEN_LIMIT, frame.id, TURN_ERRORS[TURN_TOKEN_LIMIT])
                    await put(frame)
                    await hand_over(frame)
        except asyncio.CancelledError:
            pass  # the task itself was cancelled (the loop is closing): end with `cancelled`
        except Exception:  # a bug here, not in the run (event_frames reports those)
            logger.exception("turn %s failed", turn.turn_id)
            if turn.terminal is None:
                await put(failure_frame("INTERNAL", next_id))
        finally:
            if turn.terminal is None and turn.cancel_reason == RESTARTING:
                # Handed over by a draining server (drain.py): no half answer stays in the
                # session, and the client is told to send the message again.
                await self._rewind(turn)
                await put(Frame(next_id, "error", restarting_frame_data(), RESTARTING))
            elif turn.terminal is None:
                reason = turn.cancel_reason or "cancelled"
                await put(Frame(next_id, "cancelled", json.dumps({"reason": reason})))
            turn.decided.set()
            turn.finished.set()
            if turn.grace_task is not None:
                turn.grace_task.cancel()
            if self.turns.get(turn.session_id) is turn:
                del self.turns[turn.session_id]  # its frames stay in the store for resumers

    async def _after_rewind(self, turn: Turn, invocation_id: str, run):
        """``run``'s events, once the session is rewound to before ``invocation_id``. A failed
        rewind fails the turn as an error of the run does (an error frame); the model is not
        asked and the session stays as it was."""
        async with contextlib.aclosing(run):
            await self.runner.rewind_async(user_id=turn.user_id, session_id=turn.session_id,
                                           rewind_before_invocation_id=invocation_id)
            async for event in run:
                yield event

    async def _rewind(self, turn: Turn) -> None:
        """The model never started: take the user's message (and ADK's error event) out of the
        conversation with ADK's own rewind, so that sending it again does not repeat it. The
        events stay in the session, marked rewound; ADK leaves them out of every model request."""
        try:
            invocation_id = turn.invocation_id
            if invocation_id is None:  # no event came out: the user's message is the last one
                session = await self.runner.session_service.get_session(
                    app_name=self.runner.app_name, user_id=turn.user_id, session_id=turn.session_id)
                mine = [e for e in session.events if e.author == "user"] if session else []
                invocation_id = mine[-1].invocation_id if mine else None
            if invocation_id is not None:
                await self.runner.rewind_async(user_id=turn.user_id, session_id=turn.session_id,
                                               rewind_before_invocation_id=invocation_id)
        except Exception:  # the history keeps the message: a retry repeats it, nothing worse
            logger.warning("turn %s: could not rewind the failed message", turn.turn_id, exc_info=True)

    async def cancel(self, turn: Turn, reason: str) -> None:
        """Stop the turn: ADK's abort signal first (ADK persists its INVOCATION_ABORTED event
        and closes the model request); if the run has not ended within ``abort_wait_s``,
        interrupt the turn's wait for ADK (not its task: a write to the store is never cut).
        Returns when the turn has ended (and its model response is closed: ``_produce`` closes
        any that ADK left open, see model_responses.py).
        """
        if not turn.running:
            return
        turn.cancel_reason = turn.cancel_reason or reason
        turn.abort.set()
        if turn.task is None:
            return
        done, _ = await asyncio.wait([turn.task], timeout=self.abort_wait_s)
        if not done:
            turn.interrupted = True
            if turn.waiting is not None:
                turn.waiting.reschedule(asyncio.get_running_loop().time())
            await asyncio.wait([turn.task], timeout=5)

    # -- clients attached to a turn, and the grace period ---------------------------------------
    def _arm_grace(self, turn: Turn) -> None:
        if turn.grace_task is not None:
            turn.grace_task.cancel()
        turn.grace_task = asyncio.create_task(self._grace(turn), name=f"grace-{turn.turn_id}")

    async def _grace(self, turn: Turn) -> None:
        while True:
            await asyncio.sleep(self.grace_s)
            if turn.attached or not turn.running:
                return
            state = await self.store.turn_state(turn.session_id)  # shared store: followed elsewhere?
            if state is None or state.reader_age_s is None or state.reader_age_s > READER_FRESH_S:
                break
        logger.info("turn %s: no client for %.1f s, cancelling", turn.turn_id, self.grace_s)
        await self.cancel(turn, "abandoned")

    async def follow(self, session_id: str, after: int = 0, *, poll_s: float = 1.0,
                     encode: Callable[[list[Frame]], bytes] | None = None) -> AsyncIterator[bytes]:
        """The session's latest turn from frame ``after + 1``, as SSE bytes: stored frames
        first, then live ones, to its terminal frame. Frames that are ready together go out as
        one chunk (one write); an idle stream gets ``PING`` every ``keepalive_s``. While this
        generator runs, the turn has a client. ``encode``: another wire format for the frames
        (ai_sdk.py's); by default each frame's own ``Frame.encode``."""
        turn = self.turns.get(session_id)
        if turn is not None:
            turn.attached += 1
            if turn.grace_task is not None:
                turn.grace_task.cancel()
                turn.grace_task = None
        loop = asyncio.get_running_loop()
        keepalive_s = self.keepalive_s
        elsewhere = turn is None and self.store.shared  # the turn may run on another process
        self.observability.stream_opened()
        try:
            turn_id = None
            last_write = loop.time()
            last_mark = -READER_BEAT_S
            while True:
                if elsewhere and self.closing:
                    return  # within poll_s of the drain's end: this process is about to stop
                tail = await self.store.read(session_id, after)
                if tail is None or (turn_id is not None and tail.turn_id != turn_id):
                    return
                turn_id = tail.turn_id
                if elsewhere and not tail.finished and loop.time() - last_mark >= READER_BEAT_S:
                    last_mark = loop.time()
                    if await self._seal_if_lost(session_id, tail):
                        continue  # read the TURN_LOST frame like any other
                    await self.store.mark(session_id, turn_id, reader=True)
                if tail.frames:  # none follows a terminal frame: the store refuses them
                    if turn is not None:
                        turn.taken.set()
                    yield (encode(tail.frames) if encode is not None
                           else b"".join(f.encode() for f in tail.frames))
                    after = tail.frames[-1].id
                    last_write = loop.time()
                elif loop.time() - last_write >= keepalive_s:
                    yield PING
                    last_write = loop.time()
                if tail.finished:
                    return
                await self.store.wait(session_id, after,
                                      min(poll_s, max(0.0, last_write + keepalive_s - loop.time())))
        finally:
            self.observability.stream_closed()
            if turn is not None:
                turn.attached -= 1
                # A turn whose terminal frame is written has nothing left to abandon: no timer.
                if turn.attached == 0 and turn.running and turn.terminal is None:
                    self._arm_grace(turn)

    async def _seal_if_lost(self, session_id: str, tail: Tail) -> bool:
        """Shared store: end a turn whose owner stopped checking in (its process died) with
        ``TURN_LOST``. True if sealed (by this call or by another reader just now)."""
        state = await self.store.turn_state(session_id)
        if state is None or state.ended or state.turn_id != tail.turn_id or _owner_alive(state):
            return False
        whole = await self.store.read(session_id, 0)
        last_id = whole.frames[-1].id if whole is not None and whole.frames else 0
        frame = failure_frame("TURN_LOST", last_id + 1, TURN_ERRORS["TURN_LOST"])
        with contextlib.suppress(Exception):  # another reader sealed it first: fine
            await self.store.append(session_id, tail.turn_id, frame)
        return True

    async def close(self) -> None:
        """Cancel every running turn (server shutdown)."""
        await asyncio.gather(*(self.cancel(t, "shutdown") for t in self.all_running()),
                             return_exceptions=True)
        for turn in self.turns.values():
            if turn.grace_task is not None:
                turn.grace_task.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
