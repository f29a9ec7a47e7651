"""The emulator's bytes match the real Gemini API's, and the real SDK parses them."""

import json
import re

import httpx
import pytest
from google import genai
from google.genai import errors, types

MODEL = "gemini-3.5-flash"


_clients = []  # google-genai 2.x closes a Client's connections when it is garbage-collected


def client(emulator, **options) -> genai.Client:
    made = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=emulator.url, **options))
    _clients.append(made)
    return made


def raw_stream(emulator, body, model=MODEL, headers=None):
    url = f"{emulator.url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
    return httpx.post(url, json=body, headers={"x-goog-api-key": "k", **(headers or {})}, timeout=10)


def user(text):
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def test_stream_framing_is_crlf_data_lines_in_google_json_style(emulator):
    response = raw_stream(emulator, user("Count to 3"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    body = response.content.decode()
    assert body.endswith("\r\n\r\n")
    frames = body.split("\r\n\r\n")[:-1]
    assert all(f.startswith("data: {") and "\n" not in f for f in frames)
    chunks = [json.loads(f[len("data: "):]) for f in frames]
    assert '"candidates": [{"content": {"parts": [{"text": "1, "}],"role": "model"},"index": 0}]' in frames[0]
    assert [list(c) for c in chunks] == [["candidates", "usageMetadata", "modelVersion", "responseId"]] * len(chunks)
    assert "".join(c["candidates"][0]["content"]["parts"][0].get("text", "") for c in chunks) == "1, 2, 3."
    assert len({c["responseId"] for c in chunks}) == 1
    assert {c["modelVersion"] for c in chunks} == {MODEL}
    assert [("finishReason" in c["candidates"][0]) for c in chunks] == [False] * (len(chunks) - 1) + [True]
    totals = [c["usageMetadata"]["totalTokenCount"] for c in chunks]
    assert totals == sorted(totals) and totals[0] > 0


def test_gemini_2_5_ends_on_the_last_text_chunk_and_gemini_3_adds_an_empty_one(emulator):
    def last_part(model):
        frames = raw_stream(emulator, user("Count to 3"), model=model).text.split("\r\n\r\n")[:-1]
        return json.loads(frames[-1][6:])["candidates"][0]["content"]["parts"][0]

    assert last_part("gemini-2.5-flash") == {"text": "3."}
    assert last_part("gemini-3.5-flash").get("text") == ""  # and it carries the signature
    assert last_part("gemini-3.5-flash")["thoughtSignature"]


def test_sdk_parses_stream_and_whole_answers(emulator):
    c = client(emulator)
    chunks = list(c.models.generate_content_stream(model=MODEL, contents="What is the capital of France?"))
    assert len(chunks) > 3
    assert "".join(ch.text or "" for ch in chunks) == "The capital of France is Paris."
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert all(ch.usage_metadata.total_token_count for ch in chunks)
    whole = c.models.generate_content(model=MODEL, contents="What is the capital of France?")
    assert whole.text == "The capital of France is Paris."
    assert whole.candidates[0].finish_reason == types.FinishReason.STOP


def test_non_streamed_answer_is_pretty_json(emulator):
    url = f"{emulator.url}/v1beta/models/{MODEL}:generateContent"
    response = httpx.post(url, json=user("Hello"), headers={"x-goog-api-key": "k"})
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.text.startswith('{\n  "candidates": [') and response.text.endswith("}\n")


def test_thoughts_come_first_and_the_answer_carries_a_signature(emulator):
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    chunks = list(client(emulator).models.generate_content_stream(
        model="gemini-2.5-flash", contents="What is the capital of Japan?", config=config))
    parts = [ch.candidates[0].content.parts[0] for ch in chunks]
    kinds = ["thought" if p.thought else "text" for p in parts]
    assert kinds == sorted(kinds, key=lambda k: k != "thought") and "thought" in kinds
    first_answer = next(p for p in parts if not p.thought)
    assert first_answer.thought_signature
    assert chunks[-1].usage_metadata.thoughts_token_count > 0
    assert "".join(p.text for p in parts if not p.thought) == "The capital of Japan is Tokyo."


@pytest.mark.parametrize(
    ("body", "status", "name"),
    [
        (b"{not json", 400, "INVALID_ARGUMENT"),
        (b'{"contents": []}', 400, "INVALID_ARGUMENT"),
    ],
)
def test_bad_requests_get_the_real_error_shape(emulator, body, status, name):
    url = f"{emulator.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    response = httpx.post(url, content=body, headers={"x-goog-api-key": "k", "content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == status and error["status"] == name and error["message"]
    assert response.text.startswith('{\n  "error": {')


def test_unknown_and_retired_models_are_not_found(emulator):
    for model in ("gemini-2.0-flash", "gemini-1.5-pro", "gpt-4"):
        with pytest.raises(errors.ClientError) as caught:
            client(emulator).models.generate_content(model=model, contents="hi")
        assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
        assert f"models/{model} is not found" in caught.value.message


def test_no_api_key_is_permission_denied(emulator):
    response = httpx.post(f"{emulator.url}/v1beta/models/{MODEL}:generateContent", json=user("hi"))
    assert response.status_code == 403 and response.json()["error"]["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(("status", "kind", "name"), [
    (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
    (500, errors.ServerError, "INTERNAL"),
    (503, errors.ServerError, "UNAVAILABLE"),
])
def test_fault_triggers_surface_as_sdk_errors(emulator, status, kind, name):
    with pytest.raises(kind) as caught:
        list(client(emulator).models.generate_content_stream(model=MODEL, contents=f"Hello [fault:{status}]"))
    assert caught.value.code == status and caught.value.status == name
    assert emulator.requests[-1].chunks_sent == 0


def test_header_and_armed_faults(emulator):
    c = client(emulator, headers={"x-emulator-fault": "429"})
    with pytest.raises(errors.ClientError):
        c.models.generate_content(model=MODEL, contents="hi")
    emulator.arm_fault("503", count=2)
    for _ in range(2):
        with pytest.raises(errors.ServerError):
            client(emulator).models.generate_content(model=MODEL, contents="hi")
    assert client(emulator).models.generate_content(model=MODEL, contents="hi").text


def test_transient_fault_is_retried_by_the_sdk_retry_options(emulator):
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.05)
    answer = client(emulator, retry_options=retry).models.generate_content(
        model=MODEL, contents="Count to 2 [fault:503*2]")
    assert answer.text == "1, 2."
    assert [r.status for r in emulator.requests] == [503, 503, 200]


def test_stream_cut_after_n_chunks_is_a_protocol_error(emulator):
    seen = []
    with pytest.raises(httpx.RemoteProtocolError):
        for ch in client(emulator).models.generate_content_stream(model=MODEL, contents="Count to 9 [fault:cut-after=3]"):
            seen.append(ch.text)
    assert seen == ["1, ", "2, ", "3, "]
    assert emulator.requests[-1].outcome == "cut"


def test_error_after_n_chunks_arrives_inside_the_200(emulator):
    seen = []
    with pytest.raises(errors.ServerError) as caught:
        for ch in client(emulator).models.generate_content_stream(model=MODEL, contents="Count to 9 [fault:error-after=2:503]"):
            seen.append(ch.text)
    assert seen == ["1, ", "2, "] and caught.value.code == 503


def test_finish_reason_and_blocked_prompt(emulator):
    chunks = list(client(emulator).models.generate_content_stream(model=MODEL, contents="Count to 3 [fault:finish=MAX_TOKENS]"))
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    blocked = client(emulator).models.generate_content(model=MODEL, contents="hi [fault:blocked]")
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY and not blocked.candidates


def test_unknown_fault_spec_is_a_clear_400(emulator):
    with pytest.raises(errors.ClientError) as caught:
        client(emulator).models.generate_content(model=MODEL, contents="hi [fault:explode]")
    assert caught.value.code == 400 and "unknown fault spec" in caught.value.message


def test_function_call_for_a_declared_tool_and_answer_from_its_result(emulator):
    def get_weather(city: str) -> dict:
        """Get the current weather in a city."""
        return {"city": city, "forecast": "sunny"}

    config = types.GenerateContentConfig(
        tools=[get_weather],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    first = client(emulator).models.generate_content(model=MODEL, contents="What's the weather in Paris?", config=config)
    call = first.function_calls[0]
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    assert first.candidates[0].content.parts[0].thought_signature  # gemini-3: on the call
    history = [
        types.Content(role="user", parts=[types.Part(text="What's the weather in Paris?")]),
        first.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"city": "Paris", "forecast": "sunny"})]),
    ]
    second = client(emulator).models.generate_content(model=MODEL, contents=history, config=config)
    assert second.text == "According to get_weather: city is Paris, forecast is sunny."


def test_scripted_reply_replaces_the_rules_once(emulator):
    emulator.script({"text": "Scripted answer.", "thoughts": ["Scripted thought."]})
    assert client(emulator).models.generate_content(model=MODEL, contents="hi").text == "Scripted answer."
    assert "emulator" in client(emulator).models.generate_content(model=MODEL, contents="hi").text


def test_control_endpoints(emulator):
    assert httpx.post(f"{emulator.url}/emulator/faults", json={"fault": "429", "count": 1}).status_code == 200
    with pytest.raises(errors.ClientError):
        client(emulator).models.generate_content(model=MODEL, contents="hi")
    assert httpx.post(f"{emulator.url}/emulator/script", json={"text": "Via HTTP."}).status_code == 200
    assert client(emulator).models.generate_content(model=MODEL, contents="hi").text == "Via HTTP."
    assert httpx.post(f"{emulator.url}/emulator/faults", json={"fault": "nope"}).status_code == 400
    stats = httpx.get(f"{emulator.url}/emulator/stats").json()
    assert stats["requests"] >= 2


def test_every_chunk_is_data_and_never_event_id_or_comment_lines(emulator):
    text = raw_stream(emulator, user("Tell me a story")).text
    assert not re.search(r"^(event|id|retry):|^:", text, re.MULTILINE)
