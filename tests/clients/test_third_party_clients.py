"""Third-party Gemini clients against the offline emulator (issue 13).

Each test asserts what the real Gemini API gives that library, so a failure here is an
emulator gap, not a library bug. ``make test-clients`` runs them in their own venv,
``.venv-clients`` (tests/clients/requirements.txt pins litellm, langchain-google-genai and
pydantic-ai-slim[google]; js/package-lock.json pins @google/genai), never in the workshop's
``.venv``. A library that is not installed skips its tests, except under CI, where it fails.

How each library is pointed at the emulator (its documented base-URL setting):
- LiteLLM: ``api_base=<url>/v1beta`` for completions (it appends ``/models/{model}:...``), but
  ``api_base=<url>`` for ``acount_tokens`` and ``get_valid_models`` (they append ``/v1beta/...``).
- LangChain: ``ChatGoogleGenerativeAI(base_url=<url>)``; pydantic-ai:
  ``GoogleProvider(base_url=<url>)``; @google/genai: ``httpOptions: {baseUrl: <url>}``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from workshop.backend import DEFAULT_MODEL

MODEL = "gemini-2.5-flash"
LONG_PROMPT = "Explain Server-Sent Events in 80 words"  # about 500 characters: several chunks
WEATHER_PROMPT = "What's the weather in Paris?"
# The emulator's answer to get_weather's result, whatever key the library wraps it in.
WEATHER_ANSWER = "According to get_weather: Sunny, 21 C in Paris."
STRUCTURED_PROMPT = "Suggest a place to visit."  # names no tool: only mode=ANY makes a call
JS_DIR = Path(__file__).parent / "js"
# LiteLLM's TypedDicts, at import: noise from pydantic, not about the emulator.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .* the `ReadOnly` qualifier:UserWarning")


def require(module: str):
    """Import a client library, or skip (fail under CI, where `make test-clients` installs it)."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


class City(BaseModel):
    name: str
    country: str


def get_weather(city: str) -> str:
    """Today's weather in a city."""
    return f"Sunny, 21 C in {city}"


WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city"}},
    "required": ["city"],
}


def assert_streamed(chunks: list[str], whole: str) -> None:
    """Streaming delivered the same answer as one call, in several pieces (whatever the chunk
    size: the real API sends about 25-100 characters per chunk)."""
    pieces = [c for c in chunks if c]
    assert len(pieces) >= 3, f"expected several text chunks, got {pieces!r}"
    assert "".join(pieces) == whole


def _either(part: dict, camel: str, snake: str) -> Any:
    """A part's field in either spelling: the real API accepts both (LiteLLM sends snake_case)."""
    return part.get(camel, part.get(snake))


def assert_tool_round_trip(emulator, model: str) -> None:
    """The follow-up request sent the call back with its result (and, on gemini-3, the call's
    thoughtSignature, without which the real API refuses the request)."""
    second = emulator.requests[-1]
    assert second.model == model
    parts = [p for c in second.body["contents"] for p in c.get("parts", [])]
    calls = [p for p in parts if _either(p, "functionCall", "function_call")]
    responses = [_either(p, "functionResponse", "function_response") for p in parts]
    assert [_either(p, "functionCall", "function_call")["name"] for p in calls] == ["get_weather"]
    assert [r["name"] for r in responses if r] == ["get_weather"]
    if model.startswith("gemini-3"):
        signature = _either(calls[0], "thoughtSignature", "thought_signature")
        assert signature, "gemini-3 rejects a function call sent back without its signature"


# -- LiteLLM ------------------------------------------------------------------------------------
@pytest.fixture
def litellm(emulator, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import (offline)
    module = require("litellm")
    monkeypatch.setattr(module, "num_retries", 0, raising=False)
    return module


def _litellm_kwargs(emulator) -> dict:
    return {"api_base": f"{emulator.url}/v1beta", "api_key": "test-key"}


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_litellm_generate(litellm, emulator):
    question = _user("What is the capital of France?")
    response = litellm.completion(f"gemini/{MODEL}", messages=question, **_litellm_kwargs(emulator))
    assert response.choices[0].message.content == "The capital of France is Paris."
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens > 0
    assert emulator.requests[-1].path.endswith(f"{MODEL}:generateContent")


def test_litellm_stream(litellm, emulator):
    kwargs = _litellm_kwargs(emulator)
    whole = litellm.completion(f"gemini/{MODEL}", messages=_user(LONG_PROMPT), **kwargs)
    chunks = [c.choices[0].delta.content for c in litellm.completion(
        f"gemini/{MODEL}", messages=_user(LONG_PROMPT), stream=True, **kwargs)]
    assert_streamed(chunks, whole.choices[0].message.content)


def test_litellm_async_stream(litellm, emulator):
    async def collect() -> list:
        stream = await litellm.acompletion(f"gemini/{MODEL}", messages=_user(LONG_PROMPT),
                                           stream=True, **_litellm_kwargs(emulator))
        return [c.choices[0].delta.content async for c in stream]

    assert len([c for c in asyncio.run(collect()) if c]) >= 3


@pytest.mark.parametrize("model", [MODEL, DEFAULT_MODEL])
def test_litellm_tool_round_trip(litellm, emulator, model):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                               "parameters": WEATHER_SCHEMA}}]
    kwargs = _litellm_kwargs(emulator)
    messages = _user(WEATHER_PROMPT)
    reply = litellm.completion(f"gemini/{model}", messages=messages, tools=tools, **kwargs)
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert reply.choices[0].finish_reason == "tool_calls"
    messages += [reply.choices[0].message.model_dump(),
                 {"role": "tool", "tool_call_id": call.id, "name": "get_weather",
                  "content": get_weather("Paris")}]
    final = litellm.completion(f"gemini/{model}", messages=messages, tools=tools, **kwargs)
    assert final.choices[0].message.content == WEATHER_ANSWER
    assert_tool_round_trip(emulator, model)


def test_litellm_thoughts(litellm, emulator):
    # reasoning_effort sends thinkingConfig with includeThoughts
    response = litellm.completion(f"gemini/{MODEL}", messages=_user("count to 3"),
                                  reasoning_effort="low", **_litellm_kwargs(emulator))
    message = response.choices[0].message
    assert message.reasoning_content and message.content == "1, 2, 3."
    assert response.usage.completion_tokens_details.reasoning_tokens > 0  # thoughtsTokenCount


def test_litellm_tool_choice_required(litellm, emulator):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                               "parameters": WEATHER_SCHEMA}}]
    # tool_choice="required" sends functionCallingConfig.mode=ANY: the real API must call a tool.
    response = litellm.completion(f"gemini/{MODEL}", messages=_user("Hello!"), tools=tools,
                                  tool_choice="required", **_litellm_kwargs(emulator))
    assert response.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_litellm_structured_output(litellm, emulator):
    response = litellm.completion(
        f"gemini/{MODEL}", messages=_user(STRUCTURED_PROMPT),
        response_format={"type": "json_schema",
                         "json_schema": {"name": "City", "schema": City.model_json_schema()}},
        **_litellm_kwargs(emulator),
    )
    City.model_validate_json(response.choices[0].message.content)  # the real API answers JSON


def test_litellm_count_tokens(litellm, emulator):
    # acount_tokens calls :countTokens and silently falls back to a local count on any error.
    result = asyncio.run(litellm.acount_tokens(f"gemini/{MODEL}", messages=_user("hello there"),
                                               api_key="test-key", api_base=emulator.url))
    assert result.tokenizer_type != "local_tokenizer", result
    assert result.total_tokens > 0


def test_litellm_list_models(litellm, emulator):
    # GET /v1beta/models; litellm logs and returns [] when it fails.
    models = litellm.get_valid_models(check_provider_endpoint=True, custom_llm_provider="gemini",
                                      api_key="test-key", api_base=emulator.url)
    assert f"gemini/{MODEL}" in models


def test_litellm_overloaded_before_stream(litellm, emulator):
    emulator.arm_fault("503", count=5)
    # LiteLLM maps the real API's "The model is overloaded." to InternalServerError.
    with pytest.raises((litellm.InternalServerError, litellm.ServiceUnavailableError),
                       match="overloaded"):
        litellm.completion(f"gemini/{MODEL}", messages=_user("hello"), **_litellm_kwargs(emulator))


def test_litellm_error_mid_stream(litellm, emulator):
    emulator.arm_fault("error-after=2:503")
    chunks = []
    with pytest.raises(litellm.ServiceUnavailableError, match="overloaded"):
        for chunk in litellm.completion(f"gemini/{MODEL}", messages=_user(LONG_PROMPT), stream=True,
                                        **_litellm_kwargs(emulator)):
            chunks.append(chunk.choices[0].delta.content)
    assert [c for c in chunks if c], "the chunks before the error are delivered"


# -- LangChain (langchain-google-genai, on google-genai) ----------------------------------------
@pytest.fixture
def chat_model(emulator):
    module = require("langchain_google_genai")
    # max_retries=0: the error tests must not wait through LangChain's backoff.
    return module.ChatGoogleGenerativeAI(model=MODEL, google_api_key="test-key",
                                         base_url=emulator.url, max_retries=0)


def test_langchain_generate(chat_model, emulator):
    message = chat_model.invoke("What is the capital of France?")
    assert message.content == "The capital of France is Paris."
    assert message.usage_metadata["input_tokens"] > 0


def test_langchain_stream(chat_model):
    whole = chat_model.invoke(LONG_PROMPT).content
    assert_streamed([c.content for c in chat_model.stream(LONG_PROMPT)], whole)


def test_langchain_async_stream(chat_model):
    async def collect() -> list:
        return [c.content async for c in chat_model.astream(LONG_PROMPT)]

    assert len([c for c in asyncio.run(collect()) if c]) >= 3


@pytest.mark.parametrize("model", [MODEL, DEFAULT_MODEL])
def test_langchain_tool_round_trip(chat_model, emulator, model):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    weather = tool(get_weather)
    bound = chat_model.model_copy(update={"model": model}).bind_tools([weather])
    messages = [HumanMessage(WEATHER_PROMPT)]
    reply = bound.invoke(messages)
    calls = [(c["name"], c["args"]) for c in reply.tool_calls]
    assert calls == [("get_weather", {"city": "Paris"})]
    messages += [reply, ToolMessage(weather.invoke(reply.tool_calls[0]["args"]),
                                    tool_call_id=reply.tool_calls[0]["id"])]
    assert bound.invoke(messages).text == WEATHER_ANSWER
    assert_tool_round_trip(emulator, model)


def test_langchain_thoughts(chat_model):
    thinking = chat_model.model_copy(update={"include_thoughts": True})
    blocks = thinking.invoke("count to 3").content_blocks
    assert [b["type"] for b in blocks] == ["reasoning", "text"]
    assert blocks[1]["text"] == "1, 2, 3."


def test_langchain_structured_output(chat_model):
    city = chat_model.with_structured_output(City).invoke(STRUCTURED_PROMPT)
    assert isinstance(city, City)


def test_langchain_structured_output_function_calling(chat_model):
    # A City tool and functionCallingConfig mode=ANY, allowedFunctionNames=["City"].
    structured = chat_model.with_structured_output(City, method="function_calling")
    assert isinstance(structured.invoke(STRUCTURED_PROMPT), City)


def test_langchain_count_tokens(chat_model):
    assert chat_model.get_num_tokens("hello there") > 0  # POST :countTokens


def test_langchain_overloaded_before_stream(chat_model, emulator):
    from google.genai import errors

    emulator.arm_fault("503")
    with pytest.raises(errors.ServerError) as caught:
        chat_model.invoke("hello")
    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")


def test_langchain_error_mid_stream(chat_model, emulator):
    from google.genai import errors

    emulator.arm_fault("error-after=2:503")
    chunks = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in chat_model.stream(LONG_PROMPT):
            chunks.append(chunk.content)
    assert caught.value.code == 503
    assert [c for c in chunks if c], "the chunks before the error are delivered"


# -- pydantic-ai (GoogleModel, on google-genai) -------------------------------------------------
@pytest.fixture
def google_models(emulator):
    """model name -> a pydantic-ai GoogleModel talking to the emulator."""
    require("pydantic_ai")
    google = require("pydantic_ai.models.google")
    from pydantic_ai.providers.google import GoogleProvider

    provider = GoogleProvider(api_key="test-key", base_url=emulator.url)
    return lambda name=MODEL: google.GoogleModel(name, provider=provider)


@pytest.fixture
def google_model(google_models):
    return google_models()


def test_pydantic_ai_generate(google_model):
    from pydantic_ai import Agent

    result = Agent(google_model).run_sync("What is the capital of France?")
    assert result.output == "The capital of France is Paris."
    assert result.usage.input_tokens > 0


def test_pydantic_ai_stream(google_model):
    from pydantic_ai import Agent

    agent = Agent(google_model)

    async def collect() -> list:
        async with agent.run_stream(LONG_PROMPT) as run:
            # debounce_by=None: one delta per chunk (the default groups chunks 0.1 s apart)
            return [delta async for delta in run.stream_text(delta=True, debounce_by=None)]

    assert_streamed(asyncio.run(collect()), agent.run_sync(LONG_PROMPT).output)


@pytest.mark.parametrize("model", [MODEL, DEFAULT_MODEL])
def test_pydantic_ai_tool_round_trip(google_models, emulator, model):
    from pydantic_ai import Agent

    agent = Agent(google_models(model), tools=[get_weather])
    assert agent.run_sync(WEATHER_PROMPT).output == WEATHER_ANSWER
    assert_tool_round_trip(emulator, model)


def test_pydantic_ai_thoughts(google_model):
    from pydantic_ai import Agent
    from pydantic_ai.messages import TextPart, ThinkingPart
    from pydantic_ai.models.google import GoogleModelSettings

    settings = GoogleModelSettings(google_thinking_config={"include_thoughts": True})
    result = Agent(google_model).run_sync("count to 3", model_settings=settings)
    parts = result.all_messages()[-1].parts
    assert [type(p) for p in parts] == [ThinkingPart, TextPart]
    assert result.output == "1, 2, 3."


def test_pydantic_ai_structured_output_native(google_model):
    from pydantic_ai import Agent, NativeOutput

    # responseMimeType application/json + responseJsonSchema: the real API answers valid JSON.
    result = Agent(google_model, output_type=NativeOutput(City)).run_sync(
        STRUCTURED_PROMPT)
    assert isinstance(result.output, City)


def test_pydantic_ai_structured_output_tool(google_model):
    from pydantic_ai import Agent

    # pydantic-ai's default: a final_result tool and toolConfig.functionCallingConfig.mode=ANY,
    # which makes the real API always answer with a function call.
    result = Agent(google_model, output_type=City).run_sync(STRUCTURED_PROMPT)
    assert isinstance(result.output, City)


def test_pydantic_ai_tool_then_structured_output(google_model, emulator):
    from pydantic_ai import Agent

    class Forecast(BaseModel):
        city: str
        summary: str

    # mode=ANY on every turn: get_weather first, then, after its result, the final_result tool.
    result = Agent(google_model, output_type=Forecast, tools=[get_weather]).run_sync(WEATHER_PROMPT)
    assert result.output.city == "Paris"
    calls = [p.tool_name for m in result.all_messages() for p in m.parts if p.part_kind == "tool-call"]
    assert calls == ["get_weather", "final_result"]


def test_pydantic_ai_count_tokens(google_model):
    from pydantic_ai import Agent
    from pydantic_ai.usage import UsageLimits

    limits = UsageLimits(input_tokens_limit=100_000, count_tokens_before_request=True)
    assert Agent(google_model).run_sync("hello", usage_limits=limits).output  # POST :countTokens


def test_pydantic_ai_overloaded_before_stream(google_model, emulator):
    from pydantic_ai import Agent
    from pydantic_ai.exceptions import ModelHTTPError

    emulator.arm_fault("503")
    with pytest.raises(ModelHTTPError) as caught:
        Agent(google_model).run_sync("hello")
    assert caught.value.status_code == 503


def test_pydantic_ai_error_mid_stream(google_model, emulator):
    from pydantic_ai import Agent
    from pydantic_ai.exceptions import ModelHTTPError

    emulator.arm_fault("error-after=2:503")
    chunks = []

    async def collect() -> None:
        async with Agent(google_model).run_stream(LONG_PROMPT) as run:
            async for delta in run.stream_text(delta=True, debounce_by=None):
                chunks.append(delta)

    with pytest.raises(ModelHTTPError) as caught:
        asyncio.run(collect())
    assert caught.value.status_code == 503
    assert chunks, "the chunks before the error are delivered"


# -- @google/genai (JavaScript): tests/js/genai_client.test.mjs under node --test ---------------
def test_js_genai_client(emulator):
    node = shutil.which("node")
    missing = ("node is not installed" if node is None
               else None if (JS_DIR / "node_modules" / "@google" / "genai").is_dir()
               else "run `npm ci` in tests/clients/js first (make test-clients does)")
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    env = {**os.environ, "GEMINI_EMULATOR_URL": emulator.url}
    done = subprocess.run([node, "--test", "--test-reporter=spec", "genai_client.test.mjs"],
                          cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    print(done.stdout)  # shown with -rP; the summary line and the diagnostics are the news
    if "Incomplete JSON" in done.stdout:  # tolerated by the JS test: say so in the summary
        warnings.warn("@google/genai lost the status of the error after the stream started "
                      "(googleapis/js-genai#1342, an SDK bug; tolerated)", stacklevel=1)
