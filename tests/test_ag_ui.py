"""AG-UI through ag-ui-adk (reference_server/ag_ui.py), in its own environment: ``make
test-agui`` (the main environment has no ag-ui-adk and no aiohttp, and these tests skip there).

What they show: the AG-UI event order for a text turn and a tool call, an error mid-stream as
RUN_ERROR, the bearer token required, and the reason for the separate environment: with aiohttp
importable, google-genai uses it.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

pytest.importorskip("ag_ui_adk", reason="the AG-UI extra: run `make test-agui`")

from reference_server.ag_ui import AG_UI_PATH, create_ag_ui_app  # noqa: E402
from workshop.servers import BackgroundServer  # noqa: E402

TOKEN = {"Authorization": "Bearer tok-agui"}


@pytest.fixture
def agui(emulator):
    with BackgroundServer(create_ag_ui_app({"tok-agui": "alice"})) as server:
        yield server


def run(server, text: str) -> list[dict]:
    body = {"threadId": uuid.uuid4().hex, "runId": uuid.uuid4().hex, "state": {}, "tools": [],
            "context": [], "forwardedProps": {},
            "messages": [{"id": "m1", "role": "user", "content": text}]}
    events = []
    with httpx.stream("POST", server.url + AG_UI_PATH, json=body, timeout=30,
                      headers={**TOKEN, "Accept": "text/event-stream"}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    return events


def test_this_environment_uses_aiohttp():
    """Why AG-UI has an environment of its own: here google-genai would use aiohttp."""
    from google.genai import _api_client

    assert _api_client.has_aiohttp is True


def test_text_turn_event_order(agui):
    events = run(agui, "Count to 5")
    types = [e["type"] for e in events]
    assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED", types
    start, end = types.index("TEXT_MESSAGE_START"), types.index("TEXT_MESSAGE_END")
    contents = [e["delta"] for e in events[start:end] if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert len(contents) >= 3  # word by word
    assert "".join(contents) == "1, 2, 3, 4, 5."  # each piece once


def test_tool_call_events(agui):
    types = [e["type"] for e in run(agui, "What's the weather in Paris?")]
    for kind in ("TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"):
        assert kind in types, types
    assert types.index("TOOL_CALL_END") < types.index("TOOL_CALL_RESULT") < types.index("RUN_FINISHED")


def test_error_mid_stream_is_run_error(agui):
    events = run(agui, "Count to 10 [fault:error-after=2]")
    assert events[-1]["type"] == "RUN_ERROR", [e["type"] for e in events]


def test_token_required(agui):
    response = httpx.post(agui.url + AG_UI_PATH, json={}, timeout=10)
    assert response.status_code == 401


def test_ag_ui_client_reads_the_endpoint(agui):
    """@ag-ui/client's HttpAgent (tests/js/ag_ui.test.mjs) against /api/ag-ui."""
    from test_js_clients import node_ready, run_node_tests

    node = node_ready()
    print(run_node_tests(node, "ag_ui.test.mjs", {
        "AGUI_URL": agui.url + AG_UI_PATH, "AGUI_TOKEN": TOKEN["Authorization"].split()[1]}))
