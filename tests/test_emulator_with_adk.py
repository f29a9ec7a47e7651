"""ADK's real runner and Gemini model class, streaming from the emulator over HTTP SSE."""

import pytest
from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

SSE = RunConfig(streaming_mode=StreamingMode.SSE)


async def run_turn(agent, text, run_config=SSE):
    runner = Runner(app_name="t", agent=agent, session_service=InMemorySessionService(), auto_create_session=True)
    message = types.Content(role="user", parts=[types.Part(text=text)])
    return [e async for e in runner.run_async(user_id="u", session_id="s", new_message=message, run_config=run_config)]


def weather_tool(calls):
    def get_weather(city: str) -> dict:
        """Get the current weather in a city."""
        calls.append(city)
        return {"city": city, "forecast": "sunny", "temperature_c": 21}

    return get_weather


async def test_sse_yields_partial_events_then_one_final_aggregate(emulator):
    events = await run_turn(Agent(name="a", model="gemini-2.5-flash"), "Count to 5")
    assert [e.partial for e in events] == [True] * 5 + [False]
    assert [e.is_final_response() for e in events] == [False] * 5 + [True]
    assert "".join(e.content.parts[0].text for e in events[:-1]) == "1, 2, 3, 4, 5."
    assert events[-1].content.parts[0].text == "1, 2, 3, 4, 5."
    assert len({e.id for e in events}) == 1  # partials and aggregate share one id
    assert events[-2].finish_reason == types.FinishReason.STOP


async def test_none_mode_calls_generate_content_once(emulator):
    events = await run_turn(Agent(name="a", model="gemini-2.5-flash"), "Count to 5", RunConfig())
    assert len(events) == 1 and events[0].content.parts[0].text == "1, 2, 3, 4, 5."
    assert [(r.stream, r.path.split(":")[-1]) for r in emulator.requests] == [(False, "generateContent")]


async def test_thoughts_round_trip(emulator):
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    events = await run_turn(Agent(name="a", model="gemini-2.5-flash", generate_content_config=config), "Hello")
    final = events[-1]
    assert [bool(p.thought) for p in final.content.parts] == [True, False]
    assert final.content.parts[1].thought_signature
    assert any(e.partial and e.content.parts[0].thought for e in events)
    body = emulator.requests[0].body
    # google-genai sends thinkingConfig's contents in snake_case, as the real API accepts
    assert body["generationConfig"]["thinkingConfig"] == {"include_thoughts": True}


async def test_tool_call_runs_once_and_the_answer_uses_its_result(emulator):
    calls = []
    agent = Agent(name="a", model="gemini-3.5-flash", tools=[weather_tool(calls)])
    events = await run_turn(agent, "What's the weather in Paris?")
    assert calls == ["Paris"]
    assert events[-1].is_final_response()
    assert events[-1].content.parts[0].text == (
        "According to get_weather: city is Paris, forecast is sunny, temperature_c is 21.")
    follow_up = emulator.requests[-1].body["contents"]
    assert "functionResponse" in follow_up[-1]["parts"][0]


async def test_text_and_a_call_in_one_turn(emulator):
    calls = []
    agent = Agent(name="a", model="gemini-2.5-flash", tools=[weather_tool(calls)])
    events = await run_turn(agent, "Explain how you check the weather in Rome")
    aggregate = next(e for e in events if not e.partial and e.get_function_calls())
    assert [("text" if p.text else "call") for p in aggregate.content.parts] == ["text", "call"]
    assert aggregate.content.parts[0].text == "Let me look that up with get_weather."
    assert calls == ["Rome"]


async def test_streamed_function_call_arguments_in_vertex_express_mode(emulator, monkeypatch):
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", emulator.url)
    calls = []
    config = types.GenerateContentConfig(tool_config=types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(stream_function_call_arguments=True)))
    agent = Agent(name="a", model="gemini-3.5-flash", tools=[weather_tool(calls)], generate_content_config=config)
    events = await run_turn(agent, "What's the weather in San Francisco?")
    assert calls == ["San Francisco"]
    request = emulator.requests[0]
    assert request.path.startswith("/v1beta1/publishers/google/models/")
    partial_calls = [e for e in events if e.partial and e.get_function_calls()]
    assert len(partial_calls) > 2 and events[-1].is_final_response()


@pytest.mark.parametrize("spec", ["429", "503"])
async def test_model_error_reaches_the_caller_as_event_and_exception(emulator, spec):
    from google.genai import errors

    with pytest.raises(errors.APIError) as caught:
        await run_turn(Agent(name="a", model="gemini-2.5-flash"), f"Hello [fault:{spec}]")
    assert caught.value.code == int(spec)


async def test_a_model_given_call_id_goes_back_in_the_function_response(emulator):
    """gemini-3.x names its calls; ADK keeps that id (only its own adk-... ids are stripped)."""
    calls = []
    events = await run_turn(Agent(name="a", model="gemini-3.5-flash", tools=[weather_tool(calls)]),
                            "What's the weather in Paris?")
    call = next(e for e in events if not e.partial and e.get_function_calls()).get_function_calls()[0]
    assert call.id and not call.id.startswith("adk-")
    model_turn, tool_turn = emulator.requests[-1].body["contents"][1:3]
    assert model_turn["parts"][0]["functionCall"]["id"] == call.id
    assert tool_turn["parts"][0]["functionResponse"]["id"] == call.id

    await run_turn(Agent(name="a", model="gemini-2.5-flash", tools=[weather_tool(calls)]),
                   "What's the weather in Paris?")
    model_turn, tool_turn = emulator.requests[-1].body["contents"][1:3]
    assert "id" not in model_turn["parts"][0]["functionCall"]  # ADK's own id never leaves
    assert "id" not in tool_turn["parts"][0]["functionResponse"]


@pytest.mark.parametrize(("spec", "code"), [
    ("finish=MAX_TOKENS:thinking", "MAX_TOKENS"),
    ("finish=SAFETY", "SAFETY"),
    ("finish=MALFORMED_FUNCTION_CALL", "MALFORMED_FUNCTION_CALL"),
    ("blocked=PROHIBITED_CONTENT", "PROHIBITED_CONTENT"),
])
async def test_endings_without_parts_reach_adk_as_error_codes(emulator, spec, code):
    events = await run_turn(Agent(name="a", model="gemini-3.5-flash"), f"Count to 4 [fault:{spec}]")
    assert events[-1].is_final_response() and events[-1].error_code == code


async def test_a_bare_stop_chunk_ends_the_turn_normally(emulator):
    events = await run_turn(Agent(name="a", model="gemini-2.5-flash"), "Count to 4 [fault:finish=STOP]")
    assert events[-1].is_final_response() and events[-1].error_code is None
    assert events[-1].content.parts[0].text == "1, 2, 3, 4."


async def test_output_schema_gets_json_that_validates(emulator):
    from pydantic import BaseModel

    class Forecast(BaseModel):
        city: str
        temperature_c: int
        summary: str

    events = await run_turn(Agent(name="a", model="gemini-2.5-flash", output_schema=Forecast),
                            "Forecast for Paris: 21 degrees")
    forecast = Forecast.model_validate_json(events[-1].content.parts[0].text)
    assert (forecast.city, forecast.temperature_c) == ("Paris", 21)
