"""Progressive SSE streaming on google-adk 2.13, on and off, against the emulator (notebook 07's claims)."""

import os

import pytest
from google.adk.agents import Agent
from google.adk.features import FeatureName, is_feature_enabled, override_feature_enabled
from google.adk.features import _feature_registry as registry
from google.genai import types

from workshop.checks import nb07
from workshop.display import event_row, part_kinds, turn_shape

PROGRESSIVE = FeatureName.PROGRESSIVE_SSE_STREAMING
MODEL = "gemini-3.5-flash"  # the workshop's default model: gemini-3 wire format


@pytest.fixture(autouse=True)
def feature_is_restored(monkeypatch):
    """Every test here leaves the feature as it found it (other tests share the process)."""
    monkeypatch.delenv("ADK_DISABLE_PROGRESSIVE_SSE_STREAMING", raising=False)
    monkeypatch.delenv("ADK_ENABLE_PROGRESSIVE_SSE_STREAMING", raising=False)
    assert PROGRESSIVE not in registry._FEATURE_OVERRIDES
    yield
    monkeypatch.undo()
    assert PROGRESSIVE not in registry._FEATURE_OVERRIDES
    assert is_feature_enabled(PROGRESSIVE)


@pytest.fixture
def counted_weather():
    runs = []

    def get_weather(city: str) -> dict:
        """Get the current weather in a city."""
        runs.append(city)
        return {"city": city, "forecast": "sunny", "temperature_c": 21}

    return get_weather, runs


def rows(events):
    """(partial, kinds with empty parts, finish, final) per event, identical neighbours collapsed."""
    out = []
    for e in events:
        row = event_row(e)
        if not out or out[-1] != row:
            out.append(row)
    return out


# -- the switch ---------------------------------------------------------------------------------
def test_stable_and_on_by_default():
    config = registry._FEATURE_REGISTRY[PROGRESSIVE]
    assert config.stage is registry.FeatureStage.STABLE and config.default_on
    assert is_feature_enabled(PROGRESSIVE)


def test_the_environment_is_read_at_every_call(monkeypatch):
    monkeypatch.setenv("ADK_DISABLE_PROGRESSIVE_SSE_STREAMING", "1")
    assert not is_feature_enabled(PROGRESSIVE)
    monkeypatch.delenv("ADK_DISABLE_PROGRESSIVE_SSE_STREAMING")
    assert is_feature_enabled(PROGRESSIVE)


def test_the_override_beats_the_environment(monkeypatch):
    monkeypatch.setenv("ADK_ENABLE_PROGRESSIVE_SSE_STREAMING", "1")
    with nb07.progressive_sse(False):
        assert not is_feature_enabled(PROGRESSIVE)
    assert is_feature_enabled(PROGRESSIVE)


def test_override_feature_enabled_is_public_and_sticky():
    try:
        override_feature_enabled(PROGRESSIVE, False)
        assert not is_feature_enabled(PROGRESSIVE)
    finally:
        registry._FEATURE_OVERRIDES.pop(PROGRESSIVE, None)


def test_temporary_feature_override_is_not_exported_in_2_13():
    import google.adk.features as features

    assert not hasattr(features, "temporary_feature_override")


async def test_an_environment_change_reaches_the_next_run(emulator, monkeypatch):
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService

    runner = Runner(app_name="t", agent=Agent(name="a", model=MODEL),
                    session_service=InMemorySessionService(), auto_create_session=True)

    async def count_to_3(session_id):
        message = types.Content(role="user", parts=[types.Part(text="Count to 3")])
        return [e async for e in runner.run_async(user_id="u", session_id=session_id,
                                                  new_message=message, run_config=nb07.SSE)]

    on = await count_to_3("s1")
    monkeypatch.setenv("ADK_DISABLE_PROGRESSIVE_SSE_STREAMING", "1")  # same runner, no restart
    off = await count_to_3("s2")
    assert on[-1].partial is False and sum(e.is_final_response() for e in on) == 1
    aggregate = next(e for e in off if not e.partial and "text" in part_kinds(e))
    assert aggregate.partial is None
    assert sum(e.is_final_response() for e in off) == 2  # gemini-3's empty closing part, on its own


# -- (a) thoughts, then the answer -------------------------------------------------------------
async def test_thoughts_then_text_on_and_off(emulator):
    agent = Agent(name="a", model=MODEL, generate_content_config=nb07.THINKING)
    on = await nb07.run_turn(agent, "What is the capital of France?", progressive=True)
    off = await nb07.run_turn(agent, "What is the capital of France?", progressive=False)
    assert rows(on) == [
        ("True", "thought", "-", "no"),
        ("True", "text", "-", "no"),
        ("True", "empty", "STOP", "no"),
        ("False", "thought, text, empty", "STOP", "yes"),
    ]
    assert rows(off) == [
        ("True", "thought", "-", "no"),
        ("True", "text", "-", "no"),
        ("None", "thought, text", "STOP", "yes"),
        ("None", "empty", "STOP", "yes"),
    ]
    assert len({e.id for e in on}) == 1  # partials and aggregate share one id: update by id
    assert on[-1].content.parts[-1].thought_signature  # the signature stays in the aggregate


async def test_legacy_mode_drops_a_gemini_2_5_thought_signature(emulator):
    agent = Agent(name="a", model="gemini-2.5-flash", generate_content_config=nb07.THINKING)
    on = await nb07.run_turn(agent, "Hello", progressive=True)
    off = await nb07.run_turn(agent, "Hello", progressive=False)
    assert any(p.thought_signature for p in on[-1].content.parts)
    assert not any(p.thought_signature for p in off[-1].content.parts)


# -- (b) text, a call, then the answer after the result -------------------------------------
async def test_text_then_call_on_and_off(emulator, counted_weather):
    get_weather, runs = counted_weather
    agent = Agent(name="a", model=MODEL, tools=[get_weather])
    on = await nb07.run_turn(agent, "Explain how you check the weather in Paris", progressive=True)
    assert runs == ["Paris"]
    requests_on = len(emulator.requests)
    off = await nb07.run_turn(agent, "Explain how you check the weather in Paris", progressive=False)
    assert runs == ["Paris", "Paris"]  # once in each mode: partial calls never run
    requests_off = len(emulator.requests) - requests_on
    assert rows(on) == [
        ("True", "text", "-", "no"),
        ("True", "call", "-", "no"),
        ("True", "empty", "STOP", "no"),
        ("False", "text, call, empty", "STOP", "no"),  # the aggregate before the tool: not final
        ("None", "response", "-", "no"),
        ("True", "text", "-", "no"),
        ("True", "empty", "STOP", "no"),
        ("False", "text, empty", "STOP", "yes"),
    ]
    assert rows(off) == [
        ("True", "text", "-", "no"),
        ("None", "text", "-", "yes"),  # final before the call ran
        ("None", "call", "-", "no"),
        ("None", "response", "-", "no"),
        ("None", "empty", "STOP", "yes"),  # ends the agent loop: the model never answers
    ]
    assert (requests_on, requests_off) == (2, 1)


async def test_call_only_turn_runs_once_in_both_modes_with_gemini_2_5(emulator, counted_weather):
    get_weather, runs = counted_weather
    agent = Agent(name="a", model="gemini-2.5-flash", tools=[get_weather])
    for progressive in (True, False):
        events = await nb07.run_turn(agent, "What's the weather in Paris?", progressive=progressive)
        assert events[-1].is_final_response() and events[-1].content.parts[0].text.startswith("According")
    assert runs == ["Paris", "Paris"]


async def test_prediction_turn_shape(emulator):
    agent = Agent(name="a", model=MODEL, tools=[nb07.get_weather], generate_content_config=nb07.THINKING)
    events = await nb07.run_turn(agent, nb07.PREDICTION_PROMPT)
    assert turn_shape(events) == [
        (True, ("thought",)), (True, ("call",)), (False, ("thought", "call")), (False, ("response",)),
        (True, ("thought",)), (True, ("text",)), (False, ("thought", "text"))]


# -- (c) streamed function-call arguments (Vertex AI only) ---------------------------------
STREAMED = types.GenerateContentConfig(tool_config=types.ToolConfig(
    function_calling_config=types.FunctionCallingConfig(stream_function_call_arguments=True)))


async def test_streamed_arguments_are_refused_in_gemini_api_mode(emulator):
    from google import genai

    client = genai.Client()
    config = STREAMED.model_copy(update={
        "automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True)})
    with pytest.raises(ValueError, match="not in Gemini Developer API mode"):
        async for _ in await client.aio.models.generate_content_stream(
                model=MODEL, contents="Hello", config=config):
            pass
    assert emulator.requests == []  # refused before sending


@pytest.fixture
def vertex_express(emulator, monkeypatch):
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", emulator.url)
    return emulator


async def test_streamed_arguments_on_run_once(vertex_express, counted_weather):
    get_weather, runs = counted_weather
    agent = Agent(name="a", model=MODEL, tools=[get_weather], generate_content_config=STREAMED)
    events = await nb07.run_turn(agent, "What's the weather in San Francisco?", progressive=True)
    assert runs == ["San Francisco"]
    partial_calls = [e for e in events if e.partial and e.get_function_calls()]
    assert len(partial_calls) > 2
    assert len({fc.id for e in partial_calls for fc in e.get_function_calls()}) == 1
    complete = [fc for e in events if not e.partial for fc in e.get_function_calls()]
    assert [(fc.name, fc.args) for fc in complete] == [("get_weather", {"city": "San Francisco"})]
    assert vertex_express.requests[0].path.startswith("/v1beta1/publishers/google/models/")


async def test_streamed_arguments_off_run_as_broken_calls(vertex_express, counted_weather):
    get_weather, runs = counted_weather
    agent = Agent(name="a", model=MODEL, tools=[get_weather], generate_content_config=STREAMED)
    events = await nb07.run_turn(agent, "What's the weather in San Francisco?", progressive=False)
    assert runs == []  # the tool's code never ran
    calls = [fc for e in events if not e.partial for fc in e.get_function_calls()]
    assert len(calls) > 2
    assert calls[0].name == "get_weather" and not calls[0].args
    assert all(fc.name is None for fc in calls[1:])
    errors = [r.response for e in events for r in e.get_function_responses()]
    assert len(errors) == len(calls) and all("error" in r for r in errors)
    assert not any("text" in part_kinds(e) for e in events)  # and no answer


def test_nothing_leaks_into_the_environment():
    assert "ADK_DISABLE_PROGRESSIVE_SSE_STREAMING" not in os.environ
