"""Checks for 03_async_iteration_with_run_async."""

from __future__ import annotations

import asyncio
import time

from google.adk.agents.run_config import RunConfig, StreamingMode
from google.genai import types

from ._report import fail, passed

USER = "checker"
SSE = RunConfig(streaming_mode=StreamingMode.SSE)
# Different lengths on purpose: the longest comes first, so an answer that collects the texts in
# the order they finish (asyncio.as_completed) returns them out of order.
RUN_MANY_PROMPTS = ("Count to 12", "What is the capital of France?", "What is the capital of Japan?", "Count to 4")
# With a real model the exact words vary: each answer must at least mention these.
RUN_MANY_KEYWORDS = ("12", "Paris", "Tokyo", "4")
# Concurrent wall time over the sum of one-after-another times. Concurrent runs of these prompts
# take about the longest one (~0.35 of the sum offline); one after another about 1.0.
MAX_CONCURRENT_RATIO = 0.75
FIRST_WORDS_PROMPT = "Tell me a story about a river"
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
            other = [j for j, e in enumerate(expected) if j != i and e and e in text]
            if other:
                return (f"Answer {i} contains the answer to prompt {other[0]} too: the prompts shared a session.",
                        "Create a new session for each prompt (await session_service.create_session(...)).")
            return (f"Answer {i} is {text[:60]!r}, expected {want[:60]!r}.",
                    "Return the final text of each run (the event where is_final_response() is true).")
    return None


async def check_run_many(run_many, runner, emulator=None) -> None:
    """Time the learner's run_many against running the same prompts one after another."""
    prompts = list(RUN_MANY_PROMPTS)
    reference = [await _reference_run(runner, p) for p in prompts]
    sequential = sum(seconds for _, _, seconds in reference)
    start = time.perf_counter()
    returned = await run_many(runner, prompts)
    wall = time.perf_counter() - start
    expected = [final for final, _, _ in reference] if emulator is not None else None
    problem = diagnose_run_many(returned, expected)
    if problem:
        fail(*problem)
    ratio = wall / sequential
    if ratio > MAX_CONCURRENT_RATIO:
        fail(f"run_many took {wall:.2f} s; the same prompts one after another took {sequential:.2f} s "
             f"(ratio {ratio:.2f}): it ran them one after another.",
             "Awaiting each run inside a for loop waits for one to finish before starting the next. "
             "Make one coroutine per prompt and await them together with asyncio.gather(...) "
             "or tasks in an asyncio.TaskGroup.")
    passed(f"{len(returned)} answers, in order, in {wall:.2f} s; one after another they took "
           f"{sequential:.2f} s ({sequential / wall:.1f}× faster).")


# -- Exercise 3.2 ------------------------------------------------------------------------------

class _WatchedRunner:
    """The learner's runner, unchanged, except that the check keeps each generator run_async returns.

    A server framework, a debugger or a list of pending streams can hold a reference the same way;
    only an explicit close (contextlib.aclosing) ends the stream whatever else holds it.
    """

    def __init__(self, runner) -> None:
        self._runner = runner
        self.generators: list = []

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def run_async(self, *args, **kwargs):
        agen = self._runner.run_async(*args, **kwargs)
        self.generators.append(agen)
        return agen


async def _settled_outcome(emulator, number: int, timeout: float = 1.0) -> str | None:
    """The outcome of model request ``number`` once it is no longer running (or after timeout)."""
    deadline = time.perf_counter() + timeout
    while True:
        record = next((r for r in emulator.requests if r.number == number), None)
        if record is None or record.outcome != "running" or time.perf_counter() > deadline:
            return None if record is None else record.outcome
        await asyncio.sleep(0.02)


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
        return ("When first_words returned, the run_async generator was still open: whatever else "
                "holds it (here, the check) keeps the model request streaming to the end.",
                "A bare break leaves closing to the garbage collector. Wrap the generator: "
                "async with contextlib.aclosing(runner.run_async(...)) as events: async for event in events: ...")
    if stored_answer or outcome == "completed":
        return ("The whole answer was streamed and stored in the session: the stream was not stopped early.",
                "Break out of the async for loop once you have n pieces, inside "
                "async with contextlib.aclosing(runner.run_async(...)) as events:.")
    if outcome is not None and outcome != "client_closed":
        return (f"The emulator's request ended with outcome {outcome!r}, not 'client_closed'.",
                "Close the stream as soon as you have n pieces: contextlib.aclosing plus break.")
    return None


async def check_first_words(first_words, runner, emulator=None) -> None:
    """Run the learner's function on a fresh session; check the text and that the stream was closed."""
    _, pieces, _ = await _reference_run(runner, FIRST_WORDS_PROMPT)
    # A real model's answer could be too short to stop early; then a stored answer proves nothing.
    can_stop_early = len(pieces) > FIRST_WORDS_N
    session_id = await _new_session(runner)
    watched = _WatchedRunner(runner)
    returned = await first_words(watched, USER, session_id, FIRST_WORDS_PROMPT, FIRST_WORDS_N)
    closed = all(agen.ag_frame is None for agen in watched.generators) if watched.generators else None
    outcome = None
    if emulator is not None and closed:
        request = next((r for r in reversed(emulator.requests) if _asks(r, FIRST_WORDS_PROMPT)), None)
        outcome = await _settled_outcome(emulator, request.number) if request else None
    session = await runner.session_service.get_session(app_name=runner.app_name, user_id=USER,
                                                       session_id=session_id)
    stored_answer = can_stop_early and any(e.author != "user" for e in session.events)
    for agen in watched.generators:  # the check held them: close them, so nothing streams on
        await agen.aclose()
    exact = pieces if emulator is not None else None
    problem = diagnose_first_words(returned, exact, FIRST_WORDS_N, closed, stored_answer, outcome)
    if problem:
        fail(*problem)
    how = f"; the model request ended as {outcome!r}" if outcome else ""
    passed(f"Returned the first {FIRST_WORDS_N} pieces ({returned!r}) and closed the stream at once{how}.")


def _asks(record, text: str) -> bool:
    """Whether a model request's latest user message is ``text``."""
    contents = (record.body or {}).get("contents") or []
    users = [c for c in contents if c.get("role") == "user"]
    return bool(users) and any(p.get("text") == text for p in users[-1].get("parts", []))
