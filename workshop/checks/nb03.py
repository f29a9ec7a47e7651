"""Checks for 03_async_iteration_with_run_async."""

from __future__ import annotations

import asyncio
import time

from google.adk.agents.run_config import RunConfig, StreamingMode
from google.genai import types

from ._report import fail, learner_output, passed
from ._runs import RunCall, not_streamed, runs_observed

USER = "checker"
SSE = RunConfig(streaming_mode=StreamingMode.SSE)
# Different lengths on purpose: the longest comes first, so an answer that collects the texts in
# the order they finish (asyncio.as_completed) returns them out of order.
RUN_MANY_PROMPTS = ("Count to 12", "What is the capital of France?", "What is the capital of Japan?", "Count to 4")
# With a real model the exact words vary: each answer must at least mention these.
RUN_MANY_KEYWORDS = ("12", "Paris", "Tokyo", "4")
# Long: many chunks after the first five, whatever their size (a word, or 100 characters).
FIRST_WORDS_PROMPT = "Explain Server-Sent Events in 200 words"
FIRST_WORDS_N = 5


def _message(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


def _pieces(event) -> list[str]:
    """The non-empty answer text parts of a partial event (thoughts skipped)."""
    if not (event.partial and event.content and event.content.parts):
        return []
    return [p.text for p in event.content.parts if p.text and not p.thought]


def _final_text(event) -> str | None:
    if event.is_final_response() and event.content and event.content.parts:
        return "".join(p.text for p in event.content.parts if p.text and not p.thought)
    return None


async def _new_session(runner) -> str:
    session = await runner.session_service.create_session(app_name=runner.app_name, user_id=USER)
    return session.id


async def _reference_run(runner, text: str) -> tuple[str, list[str], float]:
    """Stream one prompt in a fresh session: (final text, partial pieces, seconds)."""
    session_id = await _new_session(runner)
    start = time.perf_counter()
    final, pieces = "", []
    async for event in runner.run_async(user_id=USER, session_id=session_id,
                                        new_message=_message(text), run_config=SSE):
        pieces += _pieces(event)
        final = _final_text(event) or final
    return final, pieces, time.perf_counter() - start


# -- Exercise 3.1 ------------------------------------------------------------------------------

def diagnose_run_many(returned, expected: list[str] | None, prompts=RUN_MANY_PROMPTS,
                      keywords=RUN_MANY_KEYWORDS) -> tuple[str, str] | None:
    """What is wrong with run_many's result, as (what, hint); None if right.

    ``expected`` holds the exact answers (offline); None compares keywords only (real model).
    """
    if not isinstance(returned, (list, tuple)):
        return (f"run_many returned {type(returned).__name__}, not a list of strings.",
                "Return list(await asyncio.gather(...)): one final text per prompt, in order.")
    if len(returned) != len(prompts):
        return (f"run_many returned {len(returned)} items for {len(prompts)} prompts.",
                "Start one task per prompt and return one text per prompt.")
    for i, item in enumerate(returned):
        if not isinstance(item, str):
            name = type(item).__name__
            hint = ("Return the results, not the tasks: what asyncio.gather returns, or task.result() "
                    "for each task, with each coroutine returning its final text."
                    if name in ("Task", "Future", "coroutine")
                    else "Return the text of the final event, not the event itself.")
            return (f"Item {i} is a {name}, not a string.", hint)
    if expected is None:
        missing = [i for i, (text, word) in enumerate(zip(returned, keywords, strict=True)) if word not in text]
        if missing:
            i = missing[0]
            return (f"Answer {i} does not mention {keywords[i]!r}: is it the answer to {prompts[i]!r}?",
                    "Return the answers in the order of the prompts (asyncio.gather keeps that order).")
        return None
    if list(returned) == list(expected):
        return None
    if sorted(returned) == sorted(expected):
        return ("The answers are all there but in the wrong order (the order they finished?).",
                "asyncio.gather returns results in the order of its arguments; "
                "asyncio.as_completed yields them in the order they finish.")
    for i, (text, want) in enumerate(zip(returned, expected, strict=True)):
        if text == want + want:
            return (f"Answer {i} holds its text twice.",
                    "Take the text of the final event only (is_final_response()), "
                    "or of the partial events only, not both.")
        if text != want:
            return (f"Answer {i} is {text[:60]!r}, expected {want[:60]!r}.",
                    "Return the final text of each run (the event where is_final_response() is true).")
    return None


def diagnose_sessions(runs: list[RunCall], prompts) -> tuple[str, str] | None:
    """(what, hint) if two prompts were sent to one session; None if each had its own."""
    seen: dict[tuple, str] = {}
    for run in runs:
        key = (run.user_id, run.session_id)
        if key in seen and seen[key] != run.text:
            return (f"{seen[key]!r} and {run.text!r} were sent to the same session ({run.session_id!r}): "
                    "each turn's model request carries the other turns as history, and concurrent turns "
                    "write into one conversation.",
                    "Create a new session for each prompt, inside the coroutine that streams it: "
                    "await runner.session_service.create_session(app_name=runner.app_name, user_id=USER_ID).")
        seen[key] = run.text
    asked = {run.text for run in runs}
    missing = [p for p in prompts if p not in asked]
    if missing:
        return (f"No run was started for {missing[0]!r}.", "Start one run per prompt.")
    return None


def _overlapping(records) -> bool:
    """Whether some of these model requests were in flight at the same time."""
    spans = sorted((r.started_at, r.ended_at or float("inf")) for r in records)
    return any(later_start < end for (_, end), (later_start, _) in zip(spans, spans[1:], strict=False))


async def check_run_many(run_many, runner, emulator=None) -> None:
    """Run the learner's run_many; judge what it asked ADK (and, offline, the model) to do."""
    prompts = list(RUN_MANY_PROMPTS)
    await _reference_run(runner, "Hello")  # unmeasured: the first turn also creates the client
    reference = [await _reference_run(runner, p) for p in prompts]
    sequential = sum(seconds for _, _, seconds in reference)
    seen_before = max((r.number for r in emulator.requests), default=0) if emulator is not None else 0
    start = time.perf_counter()
    with runs_observed() as runs, learner_output():
        returned = await run_many(runner, prompts)
    wall = time.perf_counter() - start
    if not runs:
        fail("run_many never called runner.run_async.",
             "Stream each prompt with runner.run_async(...) (ask() from above does).")
    problem = not_streamed(runs) or diagnose_sessions(runs, prompts)
    if problem:
        fail(*problem)
    expected = [final for final, _, _ in reference] if emulator is not None else None
    problem = diagnose_run_many(returned, expected)
    if problem:
        fail(*problem)
    # One after another: a run starts only once an earlier one has ended. Judged from the order
    # of events, not from timings, which a loaded machine stretches.
    late = next((run for run in runs if run.finished_before), None)
    mine = [r for r in emulator.requests if r.number > seen_before] if emulator is not None else []
    if late is not None or (len(mine) > 1 and not _overlapping(mine)):
        what = (f"{late.text!r} started only after an earlier run had ended" if late is not None
                else "each model request started only after the previous one had ended")
        fail(f"run_many ran the prompts one after another: {what} ({wall:.2f} s in all; "
             f"one after another, the check's runs took {sequential:.2f} s).",
             "Awaiting each run inside a for loop waits for one to finish before starting the next. "
             "Make one coroutine per prompt and await them together with asyncio.gather(...) "
             "or tasks in an asyncio.TaskGroup.")
    passed(f"{len(returned)} answers, in order, streamed at the same time: {wall:.2f} s; one after "
           f"another they took {sequential:.2f} s.")


# -- Exercise 3.2 ------------------------------------------------------------------------------

# A close reaches the emulator at once on an idle machine (its pacing sleep wakes on the disconnect);
# on a loaded one, its thread can wait its turn for a second or more. So the check waits for the
# model request to settle, up to SETTLE_S plus a few pacing intervals, and judges by what the
# emulator did after the close: still running then, or more than LATE_CHUNKS chunks sent after it
# (a stream left open runs to its end: 15 chunks at the notebook's pacing, 5 of them read), means it was not closed.
SETTLE_S = 5.0
LATE_CHUNKS = 3
POLL_S = 0.02


async def _settled_outcome(emulator, number: int, closed_at: float, timeout: float | None = None) -> str | None:
    """The outcome of model request ``number`` once it is no longer running, judged from the close
    at ``closed_at`` (``time.time()``): "running" if it never settled within the bound, or if it
    kept streaming after the close; None if the emulator has no such request."""
    if timeout is None:
        pacing = getattr(getattr(emulator, "state", None), "pacing", None)
        timeout = SETTLE_S + 3 * (pacing.chunk_s if pacing is not None else 0.0)
    deadline = time.perf_counter() + timeout
    while True:
        record = next((r for r in emulator.requests if r.number == number), None)
        if record is None:
            return None
        if sum(sent > closed_at for sent in record.sent_at) > LATE_CHUNKS:
            return "running"  # it went on streaming after the close, whatever it ended as
        if record.outcome != "running" or time.perf_counter() > deadline:
            return record.outcome
        await asyncio.sleep(POLL_S)


def diagnose_first_words(returned, pieces: list[str] | None, n: int, closed: bool | None,
                         stored_answer: bool, outcome: str | None) -> tuple[str, str] | None:
    """What is wrong with one run of first_words, as (what, hint); None if right.

    ``pieces``: the reference stream's pieces (offline) or None (real model: text not compared).
    ``closed``: whether the generator was closed when the function returned (None: never called).
    ``stored_answer``: whether the session stored a model answer although the answer was long
    enough to stop before its end.
    ``outcome``: the emulator's outcome for the learner's model request (None: real model).
    """
    if not isinstance(returned, str):
        return (f"first_words returned {type(returned).__name__}, not a string.",
                "Collect the text pieces in a list and return ''.join(pieces).")
    if not returned.strip():
        return ("first_words returned an empty string.",
                "Append the text of each partial event's parts (skip thoughts) until you have n pieces. "
                "Did you pass run_config=RunConfig(streaming_mode=StreamingMode.SSE)?")
    if pieces is not None:
        expected = "".join(pieces[:n])
        if returned != expected:
            if returned == "".join(pieces):
                return ("first_words returned the whole answer.",
                        f"Stop after {n} pieces: break out of the loop once len(pieces) == n.")
            for k in (n - 1, n + 1):
                if returned == "".join(pieces[:k]):
                    return (f"first_words returned {k} pieces, not {n}.",
                            "Check len(pieces) right after appending, and break when it reaches n.")
            return (f"first_words returned {returned[:60]!r}, expected {expected[:60]!r}.",
                    "Join the text of the first n partial text pieces, in order, skipping thoughts.")
    if closed is None:
        return ("first_words never called runner.run_async.",
                "Stream with runner.run_async(...) and stop it early; runner.run() blocks the event loop.")
    if not closed:
        return ("When first_words returned, the run_async generator was still open: leaving the loop "
                "(a break, a return, or a task cancelled while busy outside the generator) does not "
                "close it, and whatever else holds it (here, the check) keeps the model request "
                "streaming to the end.",
                "Close it explicitly: async with contextlib.aclosing(runner.run_async(...)) as events: "
                "async for event in events: ... (inside the task, if you cancel one).")
    # The session, not the emulator's "completed", tells a stream read to its end: the emulator
    # may have written its last chunks into the socket before a prompt close reached it.
    if stored_answer:
        return ("The whole answer was streamed and stored in the session: the stream was not stopped early.",
                "Break out of the async for loop once you have n pieces, inside "
                "async with contextlib.aclosing(runner.run_async(...)) as events:.")
    if outcome == "running":
        return ("Your generator was closed, but the model request was still streaming after it.",
                "Close the stream as soon as you have n pieces: contextlib.aclosing plus break.")
    return None


def _stored_answer(session) -> bool:
    """Whether the session stored a model answer: text, not an error event such as
    INVOCATION_ABORTED (what ADK stores when the run is stopped with abort_signal)."""
    return any(e.author != "user" and not e.error_code and _final_text(e) for e in session.events)


async def check_first_words(first_words, runner, emulator=None) -> None:
    """Run the learner's function on a fresh session; check the text and that the stream was closed."""
    _, pieces, _ = await _reference_run(runner, FIRST_WORDS_PROMPT)
    # A real model's answer could be too short to stop early; then a stored answer proves nothing.
    can_stop_early = len(pieces) > FIRST_WORDS_N + 1
    session_id = await _new_session(runner)
    # Hold each generator, as a web framework or a list of open streams would: then only an
    # explicit close (aclosing, aclose, abort_signal, a cancelled task) ends the stream early.
    with runs_observed(hold=True) as runs, learner_output():
        returned = await first_words(runner, USER, session_id, FIRST_WORDS_PROMPT, FIRST_WORDS_N)
    returned_at = time.time()  # the emulator's clock: what it sends after this, it sent after the close
    try:
        problem = not_streamed(runs)
        if problem:
            fail(*problem)
        closed = all(run.generator.ag_frame is None for run in runs) if runs else None
        outcome = None
        if emulator is not None and closed:
            request = next((r for r in reversed(emulator.requests) if _asks(r, FIRST_WORDS_PROMPT)), None)
            outcome = await _settled_outcome(emulator, request.number, returned_at) if request else None
        session = await runner.session_service.get_session(app_name=runner.app_name, user_id=USER,
                                                           session_id=session_id)
        stored_answer = can_stop_early and _stored_answer(session)
    finally:
        for run in runs:  # the check held them: close them, so nothing streams on
            await run.generator.aclose()
    exact = pieces if emulator is not None else None
    problem = diagnose_first_words(returned, exact, FIRST_WORDS_N, closed, stored_answer, outcome)
    if problem:
        fail(*problem)
    how = "; the model request was closed early ('client_closed')" if outcome == "client_closed" else ""
    shown = returned if len(returned) <= 60 else f"{returned[:57]}..."
    passed(f"Returned the first {FIRST_WORDS_N} pieces ({shown!r}) and closed the stream at once{how}.")


def _asks(record, text: str) -> bool:
    """Whether a model request's latest user message is ``text``."""
    contents = (record.body or {}).get("contents") or []
    users = [c for c in contents if c.get("role") == "user"]
    return bool(users) and any(p.get("text") == text for p in users[-1].get("parts", []))
