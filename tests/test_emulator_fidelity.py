"""The emulator answers in the shapes the real Gemini API sends (issue 13).

Each test sets a small recorded example, written from the real API's shapes (not copied from
any recording), beside what the emulator sends for the same situation, and has the real
google-genai client parse both: what a client can read (or trips over) online, it reads (or
trips over) offline.
"""

import json

import httpx
import jsonschema
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

from workshop.gemini_emulator import wire

_clients = []  # google-genai 2.x closes a Client's connections when it is garbage-collected


def client(emulator, api_key="test-key", **options) -> genai.Client:
    made = genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=emulator.url, **options))
    _clients.append(made)
    return made


def replay(body: str, status: int = 200, content_type: str = "text/event-stream") -> genai.Client:
    """A google-genai client whose every request is answered with a recorded body."""
    def answer(request):
        return httpx.Response(status, content=body.encode(), headers={"content-type": content_type})

    made = genai.Client(api_key="k", http_options=types.HttpOptions(
        httpx_client=httpx.Client(transport=httpx.MockTransport(answer))))
    _clients.append(made)
    return made


def sse(*objects) -> str:
    return "".join(f"data: {wire.dumps(o)}\r\n\r\n" for o in objects)


def usage(prompt, candidates=None, thoughts=None):
    meta = {"promptTokenCount": prompt}
    if candidates:
        meta["candidatesTokenCount"] = candidates
    meta["totalTokenCount"] = prompt + (candidates or 0) + (thoughts or 0)
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def response(candidate, meta, model="gemini-2.5-flash"):
    return {"candidates": [candidate], "usageMetadata": meta, "modelVersion": model,
            "responseId": "rEcOrDeD1d"}


def text_candidate(text, finish=None, **extra):
    cand = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        cand["finishReason"] = finish
    cand["index"] = 0
    return {**cand, **extra}


def shape(value):
    """Keys (in order) and value types, the structure a client depends on."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def raw_frames(emulator, text, model="gemini-2.5-flash", config=None, key="k"):
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if config:
        body["generationConfig"] = config
    url = f"{emulator.url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
    answer = httpx.post(url, json=body, headers={"x-goog-api-key": key}, timeout=10)
    return [json.loads(f[len("data: "):]) for f in answer.text.split("\r\n\r\n") if f.startswith("data: ")]


WEATHER_TOOL = {"functionDeclarations": [{"name": "get_weather", "description": "Get the weather.",
                                          "parameters_json_schema": {"type": "object", "properties": {
                                              "city": {"type": "string"}}, "required": ["city"]}}]}


def raw_frames_with_tool(emulator, text, model):
    url = f"{emulator.url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}], "tools": [WEATHER_TOOL]}
    answer = httpx.post(url, json=body, headers={"x-goog-api-key": "k"}, timeout=10)
    return [json.loads(f[len("data: "):]) for f in answer.text.split("\r\n\r\n") if f.startswith("data: ")]


def stream(c, text, model="gemini-2.5-flash", **config):
    return list(c.models.generate_content_stream(
        model=model, contents=text, config=types.GenerateContentConfig(**config) if config else None))


# -- shapes real clients crash on ----------------------------------------------------------
RECORDED_MAX_TOKENS_WHILE_THINKING = sse(response(
    {"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0},
    usage(15, thoughts=2), "gemini-2.5-pro"))


def test_max_tokens_while_thinking_is_a_candidate_without_parts(emulator):
    recorded = stream(replay(RECORDED_MAX_TOKENS_WHILE_THINKING), "hi")
    offline = stream(client(emulator), "[fault:finish=MAX_TOKENS:thinking] What is the capital of France?",
                     model="gemini-2.5-pro")
    for chunks in (recorded, offline):
        last = chunks[-1]
        assert last.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
        assert last.candidates[0].content.parts is None and last.text is None
        with pytest.raises(TypeError):  # what code reading parts[0] meets, online and off
            last.candidates[0].content.parts[0]  # noqa: B018
        assert last.usage_metadata.thoughts_token_count and not last.usage_metadata.candidates_token_count
    frame = raw_frames(emulator, "[fault:finish=MAX_TOKENS:thinking] hi", model="gemini-2.5-pro")[-1]
    recorded_frame = json.loads(RECORDED_MAX_TOKENS_WHILE_THINKING[6:])
    assert shape(frame["candidates"]) == shape(recorded_frame["candidates"])


def test_max_tokens_mid_answer_cuts_the_text(emulator):
    full = "".join(ch.text for ch in stream(client(emulator), "Tell me a story"))
    chunks = stream(client(emulator), "Tell me a story [fault:finish=MAX_TOKENS]")
    cut = "".join(ch.text or "" for ch in chunks)
    assert full.startswith(cut) and len(cut) < len(full) * 0.7
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert chunks[-1].text  # the limit fell mid-text: the last chunk still carries text


RECORDED_SAFETY = sse(
    response(text_candidate("The first part of an answer"), usage(9, 6, 40)),
    response({"content": {}, "finishReason": "SAFETY", "index": 0, "safetyRatings": [
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    ]}, usage(9, 6, 40)),
)


def test_safety_ends_with_empty_content_and_a_blocked_rating(emulator):
    recorded = stream(replay(RECORDED_SAFETY), "hi")
    offline = stream(client(emulator), "Tell me a story [fault:finish=SAFETY]")
    for chunks in (recorded, offline):
        assert chunks[0].text
        last = chunks[-1].candidates[0]
        assert last.finish_reason == types.FinishReason.SAFETY
        assert last.content.parts is None and chunks[-1].text is None
        assert [r.blocked for r in last.safety_ratings if r.blocked] == [True]
    frame = raw_frames(emulator, "Count to 4 [fault:finish=SAFETY]")[-1]
    assert frame["candidates"][0]["content"] == {}
    assert list(frame["candidates"][0]) == ["content", "finishReason", "index", "safetyRatings"]


RECORDED_MALFORMED = sse(response({"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}, usage(2595)))


def test_malformed_function_call_has_no_content(emulator):
    recorded = stream(replay(RECORDED_MALFORMED), "hi")
    offline = stream(client(emulator), "hi [fault:finish=MALFORMED_FUNCTION_CALL]")
    for chunks in (recorded, offline):
        assert len(chunks) == 1
        assert chunks[0].candidates[0].finish_reason == types.FinishReason.MALFORMED_FUNCTION_CALL
        assert chunks[0].candidates[0].content is None and chunks[0].text is None
    frame = raw_frames(emulator, "hi [fault:finish=MALFORMED_FUNCTION_CALL]")[-1]
    assert list(frame["candidates"][0]) == ["finishReason", "index"]


RECORDED_BARE_STOP = sse(
    response(text_candidate("1, 2, 3, 4."), usage(9, 8, 30)),
    response({"finishReason": "STOP", "index": 0}, usage(9, 8, 30)),
)


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3.5-flash"])
def test_a_last_chunk_with_only_finish_reason_and_usage(emulator, model):
    recorded = stream(replay(RECORDED_BARE_STOP), "hi")
    offline = stream(client(emulator), "Count to 4 [fault:finish=STOP]", model=model)
    for chunks in (recorded, offline):
        assert "".join(ch.text or "" for ch in chunks) == "1, 2, 3, 4."
        last = chunks[-1]
        assert last.candidates[0].content is None
        assert last.candidates[0].finish_reason == types.FinishReason.STOP
        assert last.usage_metadata.total_token_count
    assert offline[-2].candidates[0].finish_reason is None  # only the bare chunk ends it


@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT"])
def test_a_blocked_prompt_has_prompt_feedback_and_token_details(emulator, reason):
    recorded_body = sse({"promptFeedback": {"blockReason": reason},
                         "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9,
                                           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9}]},
                         "modelVersion": "gemini-2.5-flash", "responseId": "rEcOrDeD1d"})
    spec = "blocked" if reason == "SAFETY" else f"blocked={reason}"
    recorded = stream(replay(recorded_body), "hi")
    offline = stream(client(emulator), f"hi [fault:{spec}]")
    for chunks in (recorded, offline):
        assert len(chunks) == 1 and not chunks[0].candidates
        assert chunks[0].prompt_feedback.block_reason == types.BlockedReason(reason)
        assert chunks[0].usage_metadata.prompt_tokens_details[0].token_count
    frame = raw_frames(emulator, f"hi [fault:{spec}]")[0]
    assert shape(frame) == shape(json.loads(recorded_body[6:]))


RECORDED_ERROR_MID_STREAM = sse(response(text_candidate("Once upon a time"), usage(9, 4, 30))) + (
    '{\n  "error": {\n    "code": 503,\n    "message": "The model is overloaded. Please try again '
    'later.",\n    "status": "UNAVAILABLE"\n  }\n}\n')


def test_an_error_after_the_stream_started_is_multi_line_json_outside_sse(emulator):
    url = f"{emulator.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "Tell me a story [fault:error-after=1:503]"}]}]}
    text = httpx.post(url, json=body, headers={"x-goog-api-key": "k"}).text
    tail = text.split("\r\n\r\n")[-1]
    assert tail == RECORDED_ERROR_MID_STREAM.split("\r\n\r\n")[-1]  # byte for byte
    assert not any(line.startswith("data: {\"error") for line in text.splitlines())
    for c in (replay(RECORDED_ERROR_MID_STREAM), client(emulator)):
        seen = []
        with pytest.raises(errors.ServerError) as caught:
            for ch in c.models.generate_content_stream(model="gemini-2.5-flash", contents=body["contents"]):
                seen.append(ch.text)
        assert len(seen) == 1 and caught.value.code == 503 and caught.value.status == "UNAVAILABLE"


# -- fields learners meet online -------------------------------------------------------------
RECORDED_HIDDEN_THINKING = sse(response(text_candidate("The capital of France is Paris.", "STOP"),
                                        usage(15, 8, 16)))


def test_thinking_models_count_thoughts_they_do_not_send(emulator):
    recorded = stream(replay(RECORDED_HIDDEN_THINKING), "hi")
    for chunks in (recorded, stream(client(emulator), "What is the capital of France?")):
        for ch in chunks:
            u = ch.usage_metadata
            assert u.thoughts_token_count > 0
            assert u.total_token_count == u.prompt_token_count + u.candidates_token_count + u.thoughts_token_count
        assert not any(p.thought for ch in chunks for p in ch.candidates[0].content.parts)
    off = stream(client(emulator), "What is the capital of France?",
                 thinking_config=types.ThinkingConfig(thinking_budget=0))
    assert off[-1].usage_metadata.thoughts_token_count is None
    lite = stream(client(emulator), "What is the capital of France?", model="gemini-2.5-flash-lite")
    assert lite[-1].usage_metadata.thoughts_token_count is None


def get_weather(city: str) -> dict:
    """Get the current weather in a city."""
    return {"city": city, "forecast": "sunny"}


NO_AFC = dict(tools=[get_weather], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
RECORDED_GEMINI3_CALL = sse(
    response({"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"},
                                                      "id": "96c1su3s"}, "thoughtSignature": "c2lnbmF0dXJl"}],
                          "role": "model"}, "index": 0}, usage(40, 8, 60), "gemini-3-pro-preview"),
    response({**text_candidate("", "STOP"), "finishMessage": "Model generated function call(s)."},
             usage(40, 8, 60), "gemini-3-pro-preview"),
)


def test_gemini3_calls_carry_an_id_and_the_turn_a_finish_message(emulator):
    recorded = stream(replay(RECORDED_GEMINI3_CALL), "hi", **NO_AFC)
    offline = stream(client(emulator), "What's the weather in Paris?", model="gemini-3.5-flash", **NO_AFC)
    for chunks in (recorded, offline):
        call = chunks[0].function_calls[0]
        assert call.id and len(call.id) == 8 and call.args == {"city": "Paris"}
        assert chunks[0].candidates[0].content.parts[0].thought_signature
        assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
        # google-genai 2.34 drops finishMessage in Gemini API mode (_Candidate_from_mldev):
        # it is on the wire, for raw-HTTP clients, but never reaches ADK.
        assert chunks[-1].candidates[0].finish_message is None
    frames = raw_frames_with_tool(emulator, "What's the weather in Paris?", "gemini-3.5-flash")
    recorded_frames = [json.loads(f[6:]) for f in RECORDED_GEMINI3_CALL.split("\r\n\r\n") if f]
    assert [shape(f["candidates"]) for f in frames] == [shape(f["candidates"]) for f in recorded_frames]


def test_gemini25_signs_its_calls_without_include_thoughts_and_gives_no_id(emulator):
    chunks = stream(client(emulator), "What's the weather in Paris?", model="gemini-2.5-flash", **NO_AFC)
    part = chunks[0].candidates[0].content.parts[0]
    assert part.function_call.name == "get_weather" and part.function_call.id is None
    assert part.thought_signature
    last = raw_frames_with_tool(emulator, "What's the weather in Paris?", "gemini-2.5-flash")[-1]
    assert last["candidates"][0]["finishMessage"] == "Model generated function call(s)."
    assert list(last["candidates"][0]) == ["content", "finishReason", "index", "finishMessage"]


def test_realistic_chunks_are_tens_of_characters_and_thoughts_whole_paragraphs(emulator):
    emulator.set_pacing(words_per_chunk=0)  # the default outside tests: the real API's sizes
    chunks = stream(client(emulator), "Tell me a story about a fox",
                    thinking_config=types.ThinkingConfig(include_thoughts=True))
    thoughts = [ch.candidates[0].content.parts[0].text for ch in chunks if ch.candidates[0].content.parts[0].thought]
    texts = [ch.text for ch in chunks if not ch.candidates[0].content.parts[0].thought]
    assert len(thoughts) == 2 and all(t.startswith("**") for t in thoughts)  # one paragraph each
    assert all(25 <= len(t) <= 120 for t in texts[:-1]) and len(texts) >= 3
    emulator.set_pacing(words_per_chunk=1)  # the knob: word-sized chunks, as tests often want
    assert len(stream(client(emulator), "Tell me a story about a fox")) > 30


# -- the rest of the surface -------------------------------------------------------------------
def test_without_alt_sse_the_stream_is_one_json_array(emulator):
    url = f"{emulator.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    answer = httpx.post(url, json={"contents": [{"role": "user", "parts": [{"text": "Tell me a story"}]}]},
                        headers={"x-goog-api-key": "k"})
    assert answer.headers["content-type"] == "application/json; charset=UTF-8"
    assert answer.text.startswith("[{\n") and answer.text.endswith("}]")
    chunks = answer.json()
    assert len(chunks) > 1 and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "data:" not in answer.text


@pytest.mark.parametrize("model", [
    "gemini-9-ultra", "gemini-2.0-flash", "gemini-1.5-pro", "gemini-pro",
    "gemini-live-2.5-flash-preview", "gemini-2.5-flash-native-audio-preview-09-2025",
])
def test_unknown_retired_and_live_only_models_are_not_found(emulator, model):
    with pytest.raises(errors.ClientError) as caught:
        client(emulator).models.generate_content(model=model, contents="hi")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    assert f"models/{model} is not found for API version v1beta, or is not supported for " \
           "generateContent" in caught.value.message


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview",
                                   "gemini-3.5-flash", "gemini-flash-latest",
                                   "gemini-2.5-flash-preview-09-2025"])
def test_current_models_answer(emulator, model):
    assert client(emulator).models.generate_content(model=model, contents="Count to 2").text == "1, 2."


def test_quota_error_carries_help_quota_failure_and_retry_info(emulator):
    with pytest.raises(errors.ClientError) as caught:
        client(emulator).models.generate_content(model="gemini-2.5-flash", contents="hi [fault:429]")
    details = {d["@type"].rsplit(".", 1)[-1]: d for d in caught.value.details["error"]["details"]}
    assert set(details) == {"Help", "QuotaFailure", "RetryInfo"}
    assert details["RetryInfo"]["retryDelay"] == "2s"
    assert details["QuotaFailure"]["violations"][0]["quotaDimensions"]["model"] == "gemini-2.5-flash"


def test_a_refused_key_is_400_api_key_invalid(emulator):
    with pytest.raises(errors.ClientError) as caught:
        client(emulator, api_key="invalid-key").models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    info = caught.value.details["error"]["details"][0]
    assert info["@type"].endswith("ErrorInfo") and info["reason"] == "API_KEY_INVALID"


@pytest.mark.parametrize(("spec", "phrase"), [("429", "Too Many Requests"), ("503", "Service Unavailable")])
def test_status_line_has_its_reason_phrase(emulator, spec, phrase):
    url = f"{emulator.url}/v1beta/models/gemini-2.5-flash:generateContent"
    answer = httpx.post(url, json={"contents": [{"role": "user", "parts": [{"text": f"hi [fault:{spec}]"}]}]},
                        headers={"x-goog-api-key": "k"})
    assert answer.reason_phrase == phrase


def test_count_tokens_and_the_model_list(emulator):
    c = client(emulator)
    assert c.models.count_tokens(model="gemini-2.5-flash", contents="What is the capital of France?").total_tokens > 0
    names = [m.name for m in c.models.list()]
    assert "models/gemini-2.5-flash" in names and "models/gemini-2.0-flash" not in names
    assert c.models.get(model="gemini-2.5-flash").name == "models/gemini-2.5-flash"


class City(BaseModel):
    name: str
    country: str
    population: int
    landmarks: list[str]


def test_structured_output_is_json_valid_against_the_schema(emulator):
    c = client(emulator)
    answer = c.models.generate_content(model="gemini-2.5-flash", contents="Describe Paris",
                                       config=types.GenerateContentConfig(
                                           response_mime_type="application/json", response_schema=City))
    assert isinstance(answer.parsed, City)
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "rank": {"type": "integer", "minimum": 3},
                                                "mood": {"enum": ["calm", "busy"]}},
              "required": ["city", "rank", "mood"], "additionalProperties": False}
    chunks = stream(c, "Is Rome busy?", response_mime_type="application/json", response_json_schema=schema)
    value = json.loads("".join(ch.text for ch in chunks))
    jsonschema.validate(value, schema)
    assert value["mood"] == "busy"


def test_camel_case_tool_names_match_like_snake_case(emulator):
    def getWeather(city: str) -> dict:  # noqa: N802 - the camelCase name is the point
        """Get the current weather in a city."""
        return {}

    config = dict(tools=[getWeather], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    chunks = stream(client(emulator), "What's the weather in Paris?", **config)
    assert chunks[0].function_calls[0].name == "getWeather"
    assert chunks[0].function_calls[0].args == {"city": "Paris"}


def test_chunk_size_knobs_come_from_the_environment(monkeypatch):
    from workshop.gemini_emulator import default_pacing

    assert (default_pacing().words_per_chunk, default_pacing().chunk_chars) == (0, wire.CHUNK_CHARS)
    monkeypatch.setenv("WORKSHOP_EMULATOR_WORDS_PER_CHUNK", "1")
    monkeypatch.setenv("WORKSHOP_EMULATOR_CHUNK_CHARS", "40")
    assert (default_pacing().words_per_chunk, default_pacing().chunk_chars) == (1, 40)
    assert wire.text_chunks("one two three", words_per_chunk=1) == ["one ", "two ", "three"]
    sized = wire.text_chunks("word " * 40, chunk_chars=40)
    assert "".join(sized) == "word " * 40 and all(len(c) <= 45 for c in sized)


def test_json_mode_without_a_schema_answers_a_json_object(emulator):
    answer = client(emulator).models.generate_content(
        model="gemini-2.5-flash", contents="Count to 3",
        config=types.GenerateContentConfig(response_mime_type="application/json"))
    assert json.loads(answer.text) == {"answer": "1, 2, 3."}


# -- toolConfig.functionCallingConfig.mode ----------------------------------------------------------
def get_time(timezone: str, hour_format: int) -> dict:
    """The current time in a timezone."""
    return {"time": "12:00"}


def calling_config(spelling, mode, allowed=None):
    """(GenerateContentConfig options, HttpOptions options) sending functionCallingConfig in one
    spelling: the SDK writes camelCase; snake_case goes in extra_body (LiteLLM writes both)."""
    if spelling == "camelCase":
        config = types.FunctionCallingConfig(mode=mode, allowed_function_names=allowed)
        return {"tool_config": types.ToolConfig(function_calling_config=config)}, {}
    calling = {"mode": mode, **({"allowed_function_names": allowed} if allowed else {})}
    return {}, {"extra_body": {"tool_config": {"function_calling_config": calling}}}


SPELLINGS = pytest.mark.parametrize("spelling", ["camelCase", "snake_case"])


@SPELLINGS
def test_mode_any_always_calls_a_function_an_allowed_one(emulator, spelling):
    tools = dict(tools=[get_weather, get_time],
                 automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    config, options = calling_config(spelling, "ANY")
    c = client(emulator, **options)
    # The message names no tool: the real API still calls one (here the first declared).
    chunks = stream(c, "Hello!", **tools, **config)
    body = emulator.requests[-1].body
    assert ("tool_config" in body) == (spelling == "snake_case")
    calls = [call for ch in chunks for call in ch.function_calls or []]
    assert [call.name for call in calls] == ["get_weather"] and isinstance(calls[0].args["city"], str)
    assert not "".join(ch.text or "" for ch in chunks)
    # allowedFunctionNames narrows the choice, even against a tool the message names.
    config, options = calling_config(spelling, "ANY", allowed=["get_time"])
    answer = client(emulator, **options).models.generate_content(
        model="gemini-3.5-flash", contents="What's the weather in Paris at 10?",
        config=types.GenerateContentConfig(**tools, **config))
    call = answer.function_calls[0]
    assert call.name == "get_time" and call.id and answer.candidates[0].content.parts[0].thought_signature
    assert isinstance(call.args["timezone"], str) and call.args["hour_format"] == 10


@SPELLINGS
def test_mode_any_calls_again_after_a_tool_result_and_none_never_calls(emulator, spelling):
    def final_result(city: str, forecast: str) -> None:
        """The final answer (pydantic-ai's output tool)."""

    tools = dict(tools=[get_weather, final_result],
                 automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    question = types.UserContent(parts=[types.Part.from_text(text="What's the weather in Paris?")])
    config, options = calling_config(spelling, "ANY")
    c = client(emulator, **options)
    first = c.models.generate_content(model="gemini-2.5-flash", contents=[question],
                                      config=types.GenerateContentConfig(**tools, **config))
    assert [call.name for call in first.function_calls] == ["get_weather"]  # the one it names
    result = types.Part.from_function_response(name="get_weather", response={"forecast": "Sunny"})
    second = c.models.generate_content(
        model="gemini-2.5-flash", contents=[question, first.candidates[0].content,
                                            types.UserContent(parts=[result])],
        config=types.GenerateContentConfig(**tools, **config))
    # ANY holds on this turn too: a call again, the tool not just answered.
    assert [call.name for call in second.function_calls] == ["final_result"]
    assert second.function_calls[0].args["city"] == "Paris"
    config, options = calling_config(spelling, "NONE")
    silent = client(emulator, **options).models.generate_content(
        model="gemini-2.5-flash", contents=[question], config=types.GenerateContentConfig(**tools, **config))
    assert silent.function_calls is None and "weather in Paris" in silent.text


@pytest.mark.parametrize("key", ["result", "output", "return_value", "content"])
def test_a_result_wrapped_by_a_client_is_quoted_plain(emulator, key):
    # google-genai and ADK wrap a plain tool result in "result", LangChain in "output",
    # pydantic-ai in "return_value", LiteLLM in "content".
    result = types.Part.from_function_response(name="get_weather", response={key: "Sunny in Paris"})
    answer = client(emulator).models.generate_content(
        model="gemini-2.5-flash", contents=[types.UserContent(parts=[result])])
    assert answer.text == "According to get_weather: Sunny in Paris."
