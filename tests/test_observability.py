"""What operators see (reference_server/observability.py): Prometheus metrics on /metrics and a
span per turn with ADK's own spans inside it, read with the OpenTelemetry SDK's in-memory
exporter, for real turns against the emulator."""

from __future__ import annotations

import re

import httpx
import pytest
from httpx_sse import connect_sse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from reference_server import Settings, create_app
from reference_server.observability import Metrics, Observability
from workshop.servers import BackgroundServer

AUTH = {"Authorization": "Bearer tok-ops"}


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """An in-memory exporter on the global tracer provider (installed once per process)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def _server(metrics: bool) -> BackgroundServer:
    settings = Settings(tokens={"tok-ops": "olive"}, database_url="memory://",
                        observability=Observability(Metrics() if metrics else None))
    return BackgroundServer(create_app(settings))


def _turn(client: httpx.Client, text: str) -> list:
    session_id = client.post("/api/sessions", headers=AUTH).json()["session_id"]
    with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", json={"text": text},
                     headers=AUTH) as source:
        return list(source.iter_sse())


def _value(exposition: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # exposition order
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, exposition, re.M)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_turns_by_outcome_time_them_and_count_tokens(emulator):
    with _server(metrics=True) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert _turn(client, "Count to 5")[-1].event == "done"
        assert _turn(client, "Tell me a story about a fox [fault:error-after=2]")[-1].event == "error"
        text = client.get("/metrics").text
    assert _value(text, "sse_turns_total", outcome="done", code="") == 1
    assert sum(float(v) for v in re.findall(r'^sse_turns_total\{code="[A-Z_]+",outcome="error"\} (\S+)$',
                                             text, re.M)) == 1
    assert _value(text, "sse_time_to_first_event_seconds_count") == 2
    assert _value(text, "sse_turn_duration_seconds_count") == 2
    assert _value(text, "sse_model_tokens_total", kind="prompt") > 0
    assert _value(text, "sse_model_tokens_total", kind="candidates") > 0
    assert _value(text, "sse_open_streams") == 0  # both streams have ended


def test_open_streams_counts_a_stream_while_it_is_open(emulator):
    emulator.set_pacing(chunk_s=0.05)
    with _server(metrics=True) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        session_id = client.post("/api/sessions", headers=AUTH).json()["session_id"]
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                         json={"text": "Count to 300"}, headers=AUTH) as source:
            events = source.iter_sse()  # kept: a discarded iterator would close the response
            next(events)
            with httpx.Client(base_url=server.url, timeout=10) as other:
                text = other.get("/metrics").text
                assert _value(text, "sse_open_streams") == 1
            client.post(f"/api/sessions/{session_id}/cancel", headers=AUTH)


def test_metrics_are_off_unless_asked_for(emulator):
    with _server(metrics=False) as server:
        r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


def test_a_turn_is_a_span_and_adks_spans_nest_inside_it(emulator, spans):
    spans.clear()
    with _server(metrics=False) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        frames = _turn(client, "What's the weather in Paris?")
    assert frames[-1].event == "done"
    finished = spans.get_finished_spans()
    turn = [s for s in finished if s.name == "sse.turn"]
    assert len(turn) == 1, [s.name for s in finished]
    turn = turn[0]
    assert turn.attributes["sse.outcome"] == "done"
    assert turn.attributes["sse.frames"] == len(frames)
    assert turn.attributes["sse.time_to_first_event_ms"] > 0
    by_id = {s.context.span_id: s for s in finished}

    def inside_turn(span) -> bool:
        while span.parent is not None:
            if span.parent.span_id == turn.context.span_id:
                return True
            span = by_id.get(span.parent.span_id)
            if span is None:
                return False
        return False

    # ADK's spans (OpenTelemetry GenAI names in google-adk 2.13); FastAPI's own request spans
    # (ADK instruments FastAPI) are the turn's parents, not its children.
    adk = [s for s in finished if s.name.split(" ")[0] in ADK_SPANS]
    names = {s.name.split(" ")[0] for s in adk}
    assert {"invoke_agent", "generate_content", "execute_tool"} <= names, names
    assert all(inside_turn(s) for s in adk), [(s.name, inside_turn(s)) for s in adk]


ADK_SPANS = {"invocation", "invoke_agent", "call_llm", "generate_content", "execute_tool"}
