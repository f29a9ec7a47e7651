"""The agent over A2A (reference_server/a2a.py: ADK's to_a2a), read by the a2a-sdk client:
a streaming call's task, status updates and artifact arrive one by one as the turn goes, one
status update per model response (to_a2a does not stream the model word by word)."""

from __future__ import annotations

import importlib.util
import json
import time

import httpx
import pytest

from workshop.servers import BackgroundServer, tcp_socket


def free_port() -> int:
    sock = tcp_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def a2a_server(emulator):
    from reference_server.a2a import create_a2a_app

    port = free_port()
    with BackgroundServer(create_a2a_app("127.0.0.1", port), port=port) as server:
        yield server


def test_aiohttp_stays_out_of_the_environment():
    """a2a-sdk is installed without aiohttp: google-genai keeps httpx for every lesson."""
    from google.genai import _api_client

    assert importlib.util.find_spec("a2a") is not None
    assert importlib.util.find_spec("aiohttp") is None
    assert _api_client.has_aiohttp is False


async def test_a2a_client_streams_a_task(a2a_server, emulator):
    from a2a.client import ClientConfig, create_client
    from a2a.types import Message, Part, Role, SendMessageRequest, TaskState

    emulator.set_pacing(first_token_s=0.05, chunk_s=0.03)
    methods = []

    async def remember(request: httpx.Request) -> None:
        if request.method == "POST":
            methods.append(json.loads(request.content).get("method"))

    card = httpx.get(f"{a2a_server.url}/.well-known/agent-card.json").json()
    assert card["capabilities"]["streaming"] is True
    assert any(skill["name"] == "get_weather" for skill in card["skills"])
    async with httpx.AsyncClient(timeout=30, event_hooks={"request": [remember]}) as http:
        client = await create_client(a2a_server.url, ClientConfig(streaming=True, httpx_client=http))
        message = Message(role=Role.ROLE_USER, message_id="m1",
                          parts=[Part(text="Explain how you check the weather in Paris")])
        arrivals = []  # (seconds, kind, state or text)
        start = time.monotonic()
        async for item in client.send_message(SendMessageRequest(message=message)):
            kind = item.WhichOneof("payload")
            if kind == "status_update":
                status = item.status_update.status
                text = "".join(p.text for p in status.message.parts if p.text)
                arrivals.append((time.monotonic() - start, kind, TaskState.Name(status.state), text))
            elif kind == "artifact_update":
                text = "".join(p.text for p in item.artifact_update.artifact.parts if p.text)
                arrivals.append((time.monotonic() - start, kind, "", text))
            else:
                arrivals.append((time.monotonic() - start, kind, "", ""))
    assert methods == ["SendStreamingMessage"]  # A2A 1.0's name for 0.3's message/stream
    kinds = [a[1] for a in arrivals]
    assert kinds[0] == "task" and kinds[-1] == "status_update"
    assert arrivals[-1][2] == "TASK_STATE_COMPLETED"
    texts = [a[3] for a in arrivals if a[1] == "status_update" and a[3]]
    assert texts[0].startswith("Let me look that up") and "Paris" in texts[-1]
    artifact = [a[3] for a in arrivals if a[1] == "artifact_update"]
    assert artifact and "Paris" in artifact[-1]
    # Progressive per model response, not per word: to_a2a runs the agent without
    # StreamingMode.SSE, so each model response arrives whole, as one status update...
    assert len(texts) == 2, texts
    # ...and the first one while the second is still being generated (its 12 words at 0.03 s
    # each: a floor set by the pacing, which load only lengthens)
    first_text = next(a[0] for a in arrivals if a[3])
    assert arrivals[-1][0] - first_text >= 0.3, arrivals
    assert emulator.requests[0].stream is False  # :generateContent, not the SSE stream
