"""Checks for 02_sync_iteration_with_run."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable

from ._report import fail, learner_output, passed
from ._runs import not_streamed, runs_observed

APP, USER, SESSION = "test", "u1", "s1"  # the seed's verification snippet's names
# Long enough to arrive in several chunks whatever their size (a word, or 100 characters).
COUNT_PROMPT = "Count to 60"
TOOL_PROMPT = "Explain step by step: what's the weather in Paris?"


def texts(event, *, thoughts: bool = False) -> str:
    """The text of one event's parts: answer text (default) or thought text."""
    parts = event.content.parts if event.content and event.content.parts else []
    return "".join(p.text for p in parts if p.text and bool(p.thought) == thoughts)


def persisted_answer(events) -> str:
    """What ADK stores as the answer: the text of the non-partial events, thoughts skipped."""
    return "".join(texts(e) for e in events if not e.partial)


def streamed_answer(events) -> str:
    return "".join(texts(e) for e in events if e.partial)


# ---------------------------------------------------------------- Exercise 2.1: typewriter

def get_weather(city: str) -> dict:
    """Returns the current weather in a city."""
    return {"city": city, "report": "Sunny, 21 °C"}


async def record_events() -> dict[str, list]:
    """Real runs (through whatever backend the setup cell chose), recorded as event lists."""
    from google.adk.agents import Agent
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService
    from google.genai import types

    from ..backend import model_name

    thinking = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    agent = Agent(name="recorder", model=model_name(), instruction="Be brief.",
                  generate_content_config=thinking, tools=[get_weather])
    runner = Runner(app_name="nb02-check", agent=agent, session_service=InMemorySessionService(),
                    auto_create_session=True)

    async def run(prompt: str, mode: StreamingMode, session_id: str) -> list:
        message = types.Content(role="user", parts=[types.Part(text=prompt)])
        config = RunConfig(streaming_mode=mode)
        return [e async for e in runner.run_async(user_id="checker", session_id=session_id,
                                                   new_message=message, run_config=config)]

    sse = await run(COUNT_PROMPT, StreamingMode.SSE, "sse")
    return {
        "sse": sse,
        "no_final_text": without_final_text(sse),
        "no_sse": await run(COUNT_PROMPT, StreamingMode.NONE, "none"),
        "tool": await run(TOOL_PROMPT, StreamingMode.SSE, "tool"),
    }


def without_final_text(events: list) -> list:
    """The same run, but the last non-partial event arrives without content."""
    last = max(i for i, e in enumerate(events) if not e.partial)
    return [e.model_copy(update={"content": None}) if i == last else e for i, e in enumerate(events)]


def without_thoughts(events: list) -> list:
    """The same events with their thought parts removed (single-part where the answer is)."""
    out = []
    for e in events:
        if e.content and e.content.parts:
            parts = [p for p in e.content.parts if not p.thought]
            e = e.model_copy(update={"content": e.content.model_copy(update={"parts": parts})})
        out.append(e)
    return out


def run_typewriter(typewriter: Callable, events: list) -> tuple[str, object, int]:
    """Call the learner's function on a copy of the events; (printed, returned, text writes).

    What it prints is kept, not shown: four runs would print four answers. A failure shows the
    printed text of the run it is about.
    """
    with learner_output(show=False) as output:
        returned = typewriter(iter(list(events)))
    return output.text, returned, output.text_writes


CASES = {
    "sse": "an SSE run (partial events, then the aggregate)",
    "no_final_text": "an SSE run whose final event arrived without content",
    "no_sse": "a run without SSE (StreamingMode.NONE: no partial events)",
    "tool": "an SSE run with a tool call between two model responses",
}


def diagnose_typewriter(case: str, events: list, printed: str, returned, writes: int,
                        typewriter: Callable | None = None) -> tuple[str, str] | None:
    """What is wrong with the learner's output on one recorded run, as (what, hint); None if right."""
    where = f"On {CASES[case]}"
    expected = streamed_answer(events) if case == "no_final_text" else persisted_answer(events)
    shown = printed.strip()
    if not isinstance(returned, str):
        return (f"{where}, typewriter returned {type(returned).__name__}, not a string.",
                "Collect each piece you print in a list and return ''.join(pieces).")
    thought_bits = [t.strip() for e in events for t in [texts(e, thoughts=True)] if len(t.strip()) >= 8]
    if any(bit in shown or bit in returned for bit in thought_bits):
        return (f"{where}, thought text was printed or returned as part of the answer.",
                "Skip parts whose part.thought is True: they are the model's reasoning, not the answer.")
    if expected and (shown.count(expected.strip()) >= 2 or returned.count(expected.strip()) >= 2):
        return (f"{where}, the answer came out twice.",
                "The non-partial event repeats the text the partial events already streamed: print it "
                "only when no partial event came before it.")
    if case == "no_final_text" and returned.strip() != expected.strip():
        return (f"{where}, typewriter returned {returned!r} instead of {expected!r}.",
                "Build the answer from the pieces you printed, not from the final event: its text can be "
                "missing (a stream cut before the aggregate, an error).")
    if case == "no_sse" and not shown:
        single = without_thoughts(events)
        if typewriter is not None and run_typewriter(typewriter, single)[0].strip():
            return (f"{where}, nothing was printed for the event [thought, text]: only one part was read.",
                    "Loop over every part of event.content.parts; the answer need not be the first part.")
        return (f"{where}, nothing was printed.",
                "Without SSE there are no partial events: print a non-partial event's text when no "
                "partial event streamed it.")
    if returned.strip() != expected.strip():
        return (f"{where}, typewriter returned {returned!r}, but the answer is {expected!r}.",
                "Return every piece you printed, joined in order, from every part of every event.")
    if shown != expected.strip():
        return (f"{where}, what was printed ({shown[:60]!r}) differs from the answer ({expected[:60]!r}).",
                "Print each piece with end='' so the pieces join into the answer, and print each once.")
    streamed_pieces = sum(bool(texts(e)) for e in events if e.partial)
    if case == "sse" and streamed_pieces >= 2 and writes < 2:
        return (f"{where}, the answer was printed in one piece: that is not a typewriter.",
                "Print the text of each partial event as it arrives, with print(text, end='', flush=True).")
    return None


async def check_typewriter(typewriter: Callable, recorded: dict[str, list] | None = None) -> None:
    """Feed the learner's typewriter recorded runs; compare what it prints and returns."""
    recorded = recorded or await record_events()
    for case, events in recorded.items():
        printed, returned, writes = run_typewriter(typewriter, events)
        problem = diagnose_typewriter(case, events, printed, returned, writes, typewriter)
        if problem:
            fail(*problem, printed=printed)
    answer = persisted_answer(recorded["sse"])
    shown = answer if len(answer) <= 40 else f"{answer[:20]}...{answer[-15:]}"
    passed(f"typewriter printed and returned each answer once on {len(recorded)} recorded runs "
           f"(e.g. {shown!r}).")


# ---------------------------------------------------------------- Exercise 2.2: verification

class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def diagnose_verification(returned, session) -> tuple[str, str] | None:
    """What is wrong with one run of fixed_verification, as (what, hint); None if right."""
    if session is None:
        return (f"There is no session {SESSION!r} for app {APP!r} and user {USER!r} in the session "
                "service the check passed in.",
                "Create the session in the session_service argument (not a new InMemorySessionService), "
                "with the seed's app_name='test' and user_id='u1', and run the runner on that service.")
    if not isinstance(returned, str):
        return (f"fixed_verification returned {type(returned).__name__}, not a string.",
                "Collect the answer text while iterating and return it as one string.")
    user_texts = [texts(e) for e in session.events if e.author == "user"]
    if "Hello" not in user_texts:
        return (f"The session does not hold the user message 'Hello' (it holds {user_texts!r}).",
                "Send the seed's message: types.Content(role='user', parts=[types.Part(text='Hello')]).")
    stored = persisted_answer([e for e in session.events if e.author != "user"])
    if not stored.strip():
        return ("The session holds no answer from the model.",
                "Iterate the whole run: the aggregated answer is stored when the run reaches it.")
    if not returned.strip():
        return ("fixed_verification returned an empty string.",
                "Append the answer text to a string or list while iterating, and return it.")
    if returned.strip() == (stored + stored).strip():
        return ("The returned text holds the answer twice.",
                "Take the text of the final event only (event.is_final_response()), or of the partial "
                "events only, not both.")
    if returned.strip() != stored.strip():
        if stored.endswith(returned.strip()):
            return ("fixed_verification returned only the last piece of the answer.",
                    "Keep every piece: join the partial texts, or take the final event's whole text.")
        return (f"fixed_verification returned {returned!r}, but the stored answer is {stored!r}.",
                "Return the answer text of the run, thoughts skipped.")
    return None


async def check_fixed_verification(fixed_verification: Callable) -> None:
    """Run the learner's function on a fresh session service, then read the session back."""
    from google.adk.errors.session_not_found_error import SessionNotFoundError
    from google.adk.sessions import InMemorySessionService

    service = InMemorySessionService()
    handler = _ListHandler()
    logger = logging.getLogger("google_adk")
    logger.addHandler(handler)
    try:
        with runs_observed() as runs, learner_output():
            returned = fixed_verification(service, SESSION)
            if inspect.isawaitable(returned):
                returned = await returned
    except SessionNotFoundError as error:
        fail(f"The run raised SessionNotFoundError: {error}.",
             "create_session is a coroutine: `await session_service.create_session(...)`, or build the "
             "Runner with auto_create_session=True.")
    finally:
        logger.removeHandler(handler)
    if not runs:
        fail("fixed_verification never ran the agent.",
             "Build a Runner on the session_service argument and iterate runner.run(...).")
    session = await service.get_session(app_name=APP, user_id=USER, session_id=SESSION)
    # The mode first: without SSE, collecting partial text returns "", which is not the cause.
    problem = not_streamed(runs, call="runner.run") or diagnose_verification(returned, session)
    if problem:
        fail(*problem)
    deprecated = any("Deprecated" in r.getMessage() for r in handler.records)
    passed(f"Session {SESSION!r} exists with 'Hello' and the answer ({len(returned)} characters) stored.")
    if deprecated:
        print("   Note: create_session_sync works but is deprecated; prefer `await "
              "session_service.create_session(...)` or auto_create_session=True.")
