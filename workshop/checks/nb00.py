"""Checks for 00_setup_and_first_stream."""

from __future__ import annotations

from ._report import fail, learner_output, passed
from ._runs import not_streamed, runs_observed

# Long enough to arrive in several chunks whatever their size (a word, or 100 characters).
PROMPT = "Count to 60"


def final_text(session) -> str:
    """The text of the last model event ADK stored in the session (thoughts skipped)."""
    for event in reversed(session.events):
        if event.author != "user" and event.content and event.content.parts:
            return "".join(p.text for p in event.content.parts if p.text and not p.thought)
    return ""


def diagnose_stream_answer(printed: str, returned, expected: str) -> tuple[str, str] | None:
    """What is wrong with one run of a learner's stream_answer, as (what, hint); None if right."""
    if not isinstance(returned, str):
        return (f"stream_answer returned {type(returned).__name__}, not a string.",
                "Collect the text pieces in a list and return ''.join(pieces).")
    if returned.strip() == "":
        return ("stream_answer returned an empty string.",
                "Append each partial part's text to a list as you print it, and return the joined list.")
    if not expected:
        return (f"stream_answer returned {returned[:40]!r}, but the session holds no answer: the run "
                "stopped before its end (ADK stores the answer only when the stream completes).",
                "Let the async for loop run to the end; return after it, not inside it.")
    shown = printed.strip()
    if shown.count(expected.strip()) >= 2:
        return ("The answer was printed twice.",
                "The final event (partial falsy) repeats the whole text of the partial events: "
                "print only events with event.partial == True.")
    if returned.strip() != expected.strip():
        if expected.endswith(returned.strip()):
            return ("stream_answer returned only the last piece of the answer.",
                    "Keep every piece: append each part.text to a list, then join them.")
        if returned.strip() == (expected + expected).strip():
            return ("The returned answer holds the text twice.",
                    "Collect text from partial events only; the final event repeats it all.")
        return (f"stream_answer returned {returned!r}, but the answer stored in the session is {expected!r}.",
                "Join the text of the partial events' parts, in order, skipping thought parts.")
    if shown != expected.strip():
        if not shown:
            return ("Nothing was printed while streaming.",
                    "print(part.text, end='', flush=True) for each partial text part.")
        if "".join(shown.split()) == "".join(expected.split()):
            return ("Each piece was printed on a line of its own: the answer comes out broken into lines.",
                    "print(part.text, end='', flush=True): end='' keeps the pieces on one line.")
        return (f"What was printed ({shown[:60]!r}...) differs from the answer.",
                "Print each partial piece with end='' so the pieces join into the answer.")
    return None


async def check_stream_answer(stream_answer, runner, session_service, user_id: str = "learner") -> None:
    """Run the learner's function on a fresh session; compare printed, returned and stored text."""
    session = await session_service.create_session(app_name=runner.app_name, user_id=user_id)
    with runs_observed() as runs, learner_output() as output:
        returned = await stream_answer(runner, user_id, session.id, PROMPT)
    if not runs:
        fail("stream_answer never called runner.run_async.",
             "Stream the answer with `async for event in runner.run_async(...)`.")
    problem = not_streamed(runs)  # first: without SSE every other symptom has the wrong cause
    stored = await session_service.get_session(app_name=runner.app_name, user_id=user_id, session_id=session.id)
    problem = problem or diagnose_stream_answer(output.text, returned, final_text(stored))
    if problem:
        fail(*problem)
    if output.text_writes < 2:
        fail("The answer was printed in one piece, after it was complete: that is not streaming.",
             "Print inside the loop, for each partial event, with print(part.text, end='', flush=True).")
    passed(f"Streamed and returned the whole answer, each piece once ({len(returned)} characters).")
