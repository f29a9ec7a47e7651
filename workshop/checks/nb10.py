"""Checks for 10_testing_streaming_agents.

Both checks run against their own zero-paced emulator (as the ``emulator`` pytest fixture
does), whatever backend the setup cell chose: tests never talk to the real model.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from ._report import fail, passed

_EMULATOR = None
_ENV = ("GOOGLE_GEMINI_BASE_URL", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")


@contextlib.contextmanager
def offline_emulator() -> Iterator[Any]:
    """A zero-paced emulator, reset, with the environment pointed at it for the block
    (what the ``emulator`` fixture of workshop.testing does for one test)."""
    global _EMULATOR
    from ..gemini_emulator import start_emulator

    if _EMULATOR is None or not _EMULATOR.running:
        _EMULATOR = start_emulator(first_token_s=0, chunk_s=0)
    _EMULATOR.reset()
    _EMULATOR.set_pacing(first_token_s=0, chunk_s=0, words_per_chunk=1)
    saved = {name: os.environ.get(name) for name in _ENV}
    os.environ.update(GOOGLE_GEMINI_BASE_URL=_EMULATOR.url, GOOGLE_API_KEY="test-key")
    os.environ.pop("GEMINI_API_KEY", None)
    os.environ.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
    try:
        yield _EMULATOR
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _quiet_adk() -> Iterator[None]:
    """Keep ADK's warnings (e.g. "Tool 'get_weather' not found") out of the check's output."""
    adk_logger = logging.getLogger("google_adk")
    level = adk_logger.level
    adk_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        adk_logger.setLevel(level)


def _model() -> str:
    from ..backend import model_name

    name = model_name()
    return name if name.startswith("gemini-") else "gemini-3.5-flash"


async def _turn(agent, text: str) -> list:
    """Every event of one SSE turn of ``agent`` on a fresh in-memory session."""
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService
    from google.genai import types

    runner = Runner(app_name="nb10-check", agent=agent, session_service=InMemorySessionService(),
                    auto_create_session=True)
    message = types.Content(role="user", parts=[types.Part(text=text)])
    try:
        async with contextlib.aclosing(runner.run_async(
            user_id="checker", session_id="s1", new_message=message,
            run_config=RunConfig(streaming_mode=StreamingMode.SSE),
        )) as run:
            return [event async for event in run]
    finally:
        await runner.close()


def _text(event) -> str:
    if not (event.content and event.content.parts):
        return ""
    return "".join(p.text for p in event.content.parts if p.text and not p.thought)


# ------------------------------------------------------------ Exercise 10.1: assert_streamed_once

def _weather_tool():
    from reference_server import get_weather

    return get_weather


async def record_streams() -> tuple[dict[str, list], dict[str, list]]:
    """Recorded turns: (good streams, broken streams), each a name -> list of ADK events."""
    from google.adk.agents import Agent
    from google.genai import types

    def agent(**kwargs):
        return Agent(name="assistant", model=_model(), instruction="Be brief.", **kwargs)

    async def sign(callback_context):  # a callback that returns content adds a second final
        return types.Content(role="model", parts=[types.Part(text="Sent by WeatherBot.")])

    good: dict[str, list] = {}
    with offline_emulator() as emulator:
        emulator.script({"text": "Light rain in London today."})
        good["a plain answer"] = await _turn(agent(), "Hello")
        emulator.set_pacing(words_per_chunk=3)
        emulator.script({"text": "Light rain in London today, and a breeze."})
        good["a plain answer in bigger chunks"] = await _turn(agent(), "Hello")
        emulator.set_pacing(words_per_chunk=1)
        emulator.script({"thoughts": ["The user greets me."], "text": "Hello there!"})
        good["thoughts, then an answer"] = await _turn(agent(), "Hello")
        emulator.script({"function_call": {"name": "get_weather", "args": {"city": "London"}}},
                        {"text": "Light rain in London."})
        good["a tool call, then an answer"] = await _turn(agent(tools=[_weather_tool()]), "Weather?")
        emulator.script({"text": "Let me check.", "function_call": {"name": "get_weather", "args": {"city": "Rome"}}},
                        {"text": "Sunny in Rome."})
        text_and_call = await _turn(agent(tools=[_weather_tool()]), "Weather?")
        good["text and a tool call in one response, then an answer"] = text_and_call
        emulator.script({"text": "Light rain in London."})
        signed = await _turn(agent(after_agent_callback=sign), "Hello")

    plain = good["a plain answer"]
    final = plain[-1]
    partial_texts = [i for i, e in enumerate(plain) if e.partial and _text(e)]
    first_aggregate = next(i for i, e in enumerate(text_and_call) if not e.partial)
    bad = {
        "missing final": plain[:-1],
        "duplicate final": [*plain, copy.deepcopy(final)],
        "second final message": signed,
        "lost chunk": [e for i, e in enumerate(plain) if i != partial_texts[1]],
        "doubled chunk": [*plain[:partial_texts[1] + 1], plain[partial_texts[1]], *plain[partial_texts[1] + 1:]],
        "unfinished first response": [e for i, e in enumerate(text_and_call) if i != first_aggregate],
    }
    return good, bad


BAD_STREAMS = {
    "missing final": (
        "a stream cut before its final event (partial events only)",
        "Count the events for which event.is_final_response() is true: there must be exactly one."),
    "duplicate final": (
        "a stream whose final event arrived twice",
        "Exactly one event may be a final response (event.is_final_response()), and it is the last."),
    "second final message": (
        "a turn with a second final message (an after_agent_callback that returns content)",
        "Exactly one event may be a final response (event.is_final_response()), and it is the last."),
    "lost chunk": (
        "a stream that lost a partial event (the final text is longer than what streamed)",
        "Join the text of the partial events that share the final event's id and compare it with "
        "the final event's text."),
    "doubled chunk": (
        "a stream that sent one partial event twice (the reader saw a word twice)",
        "Join the text of the partial events that share the final event's id and compare it with "
        "the final event's text."),
    "unfinished first response": (
        "a tool-call turn whose first model response (text and call) never got its aggregated event",
        "Check every model response, not only the last: for each event id that has partial events, "
        "exactly one non-partial event with that id must follow, with the same text."),
}


def _outcome(fn: Callable, events: list) -> BaseException | None:
    try:
        fn(copy.deepcopy(events))
    except NotImplementedError:
        raise
    except Exception as exc:
        return exc
    return None


async def check_streamed_once(assert_streamed_once: Callable, streams=None) -> None:
    """Feed correct and broken recorded turns to the learner's assertion."""
    good, bad = streams or await record_streams()
    for name, events in good.items():
        error = _outcome(assert_streamed_once, events)
        if error is not None:
            fail(f"assert_streamed_once rejected a correct stream ({name}, {len(events)} events): "
                 f"{type(error).__name__}: {error}",
                 "Assert only what holds however the model chunks its answer: exactly one final "
                 "response at the end, and each response's partial text equal to its final text. "
                 "Never count events, and skip thought parts (part.thought).")
    for name, events in bad.items():
        what, hint = BAD_STREAMS[name]
        error = _outcome(assert_streamed_once, events)
        if error is None:
            fail(f"assert_streamed_once accepted {what}.", hint)
        if not isinstance(error, AssertionError):
            fail(f"assert_streamed_once raised {type(error).__name__} ({error}) on {what}, "
                 "not an AssertionError.",
                 "Use assert statements with a message, so pytest reports a failed test, not a crash.")
    passed(f"assert_streamed_once accepts {len(good)} correct streams and rejects "
           f"{len(bad)} broken ones.")


# ------------------------------------------------------------ Exercise 10.2: a test of a tool call

class RecordingEmulator:
    """The emulator handle, passed to the learner's test, remembering what it was scripted."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self.scripted: list = []

    def script(self, *replies) -> None:
        self.scripted.extend(replies)
        self._handle.script(*replies)

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


def weather_agents() -> dict[str, tuple[Any, str, str]]:
    """name -> (agent, what is wrong with it, hint); the first is right."""
    from google.adk.agents import Agent
    from google.adk.models import LlmResponse
    from google.genai import types

    get_weather = _weather_tool()

    def get_weather_anywhere(city: str) -> dict:
        """Get today's weather forecast for a city.

        Args:
            city: The city's name, e.g. "Paris".
        """
        return get_weather("Paris")  # the bug: the argument is ignored

    get_weather_anywhere.__name__ = "get_weather"

    async def sign(callback_context):
        return types.Content(role="model", parts=[types.Part(text="Sent by WeatherBot.")])

    def disclaim(callback_context, llm_response):  # edits the final text, not what streamed
        if not llm_response.partial and llm_response.content and llm_response.content.parts:
            part = llm_response.content.parts[0]
            if part.text:
                part.text += " (forecasts may change)"
                return llm_response
        return None

    def hold_back(callback_context, llm_response):  # "moderation" that streams nothing
        if llm_response.partial and llm_response.content and llm_response.content.parts:
            if any(part.text for part in llm_response.content.parts):
                return LlmResponse(partial=True, content=types.Content(
                    role="model", parts=[types.Part(text="")]))
        return None

    def shout(callback_context, llm_response):  # rewrites streamed and final text alike
        if llm_response.content and llm_response.content.parts:
            for part in llm_response.content.parts:
                if part.text and not part.thought:
                    part.text = part.text.upper()
            return llm_response
        return None

    def agent(**kwargs):
        return Agent(name="assistant", model=_model(), instruction="Answer about the weather.", **kwargs)

    return {
        "right": (agent(tools=[get_weather]), "", ""),
        "no tool": (
            agent(tools=[]),
            "an agent that forgot to register get_weather (ADK then sends the model an error "
            "result instead of the forecast, and the turn goes on)",
            "Check the tool's result: assert_tool_called_once returns it; compare it with "
            "get_weather('London')."),
        "wrong result": (
            agent(tools=[get_weather_anywhere]),
            "an agent whose tool ignores its argument (it returns the forecast for Paris)",
            "Check the tool's result: assert_tool_called_once returns it; compare it with "
            "get_weather('London')."),
        "two finals": (
            agent(tools=[get_weather], after_agent_callback=sign),
            "an agent whose after_agent_callback adds a second final message",
            "Assert partials then exactly one final: assert_partials_then_one_final(events)."),
        "edited final": (
            agent(tools=[get_weather], after_model_callback=disclaim),
            "an agent whose after_model_callback edits the final text, so the stored answer "
            "differs from what the user saw streaming",
            "Assert that the streamed text equals the final text: assert_partials_then_one_final(events), "
            "and compare the answer with the scripted text."),
        "nothing streamed": (
            agent(tools=[get_weather], after_model_callback=hold_back),
            "an agent whose after_model_callback holds the answer back until the end (its "
            "partial events carry no text: the user waits, then sees it all at once)",
            "Assert that the answer streamed, not only that the final text is right: "
            "assert_partials_then_one_final(events) fails when no partial event carried it."),
        "rewritten answer": (
            agent(tools=[get_weather], after_model_callback=shout),
            "an agent whose after_model_callback rewrites the answer (upper case, streamed and "
            "final alike, so they still agree)",
            "Compare the answer with the scripted text: assert assert_partials_then_one_final(events) "
            "== 'Light rain in London.'."),
    }


def _scripts_the_scenario(scripted: list) -> tuple[str, str] | None:
    calls = [r.get("function_call") for r in scripted if isinstance(r, dict)]
    calls += [getattr(r, "function_call", None) for r in scripted if not isinstance(r, dict)]
    names = [c["name"] if isinstance(c, dict) else c.name for c in calls if c]
    if not scripted:
        return ("Your test did not script the model: it relied on the emulator's own rules.",
                "Queue the two replies with emulator.script({'function_call': {...}}, {'text': ...}).")
    if "get_weather" not in names:
        return ("Your test scripted no call of get_weather.",
                "The first scripted reply is {'function_call': {'name': 'get_weather', "
                "'args': {'city': 'London'}}}.")
    if len(scripted) < 2:
        return ("Your test scripted the call but not the answer that follows the tool's result.",
                "Script a second reply, {'text': 'Light rain in London.'}: the model is asked again "
                "once the tool has answered.")
    return None


async def check_weather_test(test_fn: Callable) -> None:
    """Run the learner's test against a right agent (it must pass) and broken ones (it must fail)."""
    agents = weather_agents()
    for name, (agent, what, hint) in agents.items():
        with offline_emulator() as handle, _quiet_adk():
            emulator = RecordingEmulator(handle)
            try:
                await test_fn(emulator, agent)
            except NotImplementedError:
                raise
            except Exception as exc:
                if name == "right":
                    fail(f"Your test fails against a correct agent: {type(exc).__name__}: {exc}",
                         "Script two replies (the call, then the answer), run one turn with "
                         "collect_turn(agent, ...), and assert on the call, its result and the answer.")
                continue
            if name == "right":
                problem = _scripts_the_scenario(emulator.scripted)
                if problem:
                    fail(*problem)
                if len(handle.requests) != 2:
                    fail(f"Your test made {len(handle.requests)} model requests, not the 2 of one "
                         "tool-call turn (the call, then the answer).",
                         "Run exactly one turn: events = await collect_turn(agent, \"What's the weather in London?\").")
            else:
                fail(f"Your test passed against {what}.", hint)
    passed(f"Your test passes against the right agent and fails against all {len(agents) - 1} "
           "broken ones.")
