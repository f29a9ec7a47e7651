"""What operators need to see: Prometheus metrics and OpenTelemetry traces of streamed turns.

Metrics (``prometheus-client``), served at ``GET /metrics`` when ``WORKSHOP_METRICS=on``:

- ``sse_time_to_first_event_seconds`` (histogram): from the turn's start to its first frame;
- ``sse_turn_duration_seconds`` (histogram): from the start to the terminal frame;
- ``sse_open_streams`` (gauge): responses streaming now (first requests and resumes);
- ``sse_turns_total{outcome, code}`` (counter): terminal frames by kind (done, error with its
  code, cancelled);
- ``sse_model_tokens_total{kind}`` (counter): prompt, candidates and thoughts tokens from the
  model's usage metadata;
- ``sse_quota_refusals_total{reason}`` (counter): requests refused 429 by a per-user limit
  (quotas.py): ``turns``, ``streams`` or ``tokens``. A turn stopped by its token budget is an
  ``sse_turns_total{outcome="error", code="TURN_TOKEN_LIMIT"}``.

Traces: each turn is a span ``sse.turn`` (turn id, frames, outcome, time to first event); ADK's
own spans (OpenTelemetry GenAI names in google-adk 2.13: ``invoke_agent``, ``generate_content``,
``execute_tool``...) are made inside the turn's task, so they are its children. Export with
``WORKSHOP_TRACING=console`` (the SDK's console exporter) or ``otlp`` (OTLP over HTTP to
``OTEL_EXPORTER_OTLP_ENDPOINT``; the exporter is in requirements.txt). Unset: no exporter is
installed by the server (spans cost next to nothing, and a host application may install its
own).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

METRICS_ENV = "WORKSHOP_METRICS"
TRACING_ENV = "WORKSHOP_TRACING"
# Seconds: the first event of a model that thinks can take several; a turn with tools, minutes.
TTFE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
DURATION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The server's Prometheus metrics, on a registry of their own (one per app)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.ttfe = Histogram("sse_time_to_first_event_seconds", "Turn start to its first frame",
                              buckets=TTFE_BUCKETS, registry=r)
        self.duration = Histogram("sse_turn_duration_seconds", "Turn start to its terminal frame",
                                  buckets=DURATION_BUCKETS, registry=r)
        self.open_streams = Gauge("sse_open_streams", "Responses streaming now", registry=r)
        self.turns = Counter("sse_turns", "Turns by terminal frame", ["outcome", "code"], registry=r)
        self.tokens = Counter("sse_model_tokens", "Model tokens by kind", ["kind"], registry=r)
        self.refusals = Counter("sse_quota_refusals", "Requests refused by a per-user limit",
                                ["reason"], registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class TurnRecord:
    """One turn as observed: fed by the turn's task, ended by its terminal frame."""

    metrics: Metrics | None
    span: Any
    started: float = field(default_factory=time.monotonic)
    first: float | None = None
    frames: int = 0

    def frame(self, kind: str, code: str | None = None) -> None:
        """A frame was stored; a terminal one (not ``event``) ends the record."""
        self.frames += 1
        if self.first is None:
            self.first = time.monotonic()
            if self.metrics:
                self.metrics.ttfe.observe(self.first - self.started)
            self.span.set_attribute("sse.time_to_first_event_ms",
                                    round((self.first - self.started) * 1000, 1))
        if kind != "event":
            self.end(kind, code)

    def usage(self, usage: Any) -> None:
        """A final event's ``usage_metadata``: tokens by kind."""
        if self.metrics:
            for kind, attr in (("prompt", "prompt_token_count"), ("candidates", "candidates_token_count"),
                               ("thoughts", "thoughts_token_count")):
                if count := getattr(usage, attr, None):
                    self.metrics.tokens.labels(kind).inc(count)

    def end(self, outcome: str, code: str | None) -> None:
        if self.metrics:
            self.metrics.duration.observe(time.monotonic() - self.started)
            self.metrics.turns.labels(outcome, code or "").inc()
        self.span.set_attribute("sse.frames", self.frames)
        self.span.set_attribute("sse.outcome", outcome)
        if code:
            self.span.set_attribute("sse.error_code", code)
            self.span.set_status(trace.Status(trace.StatusCode.ERROR, code))


class Observability:
    """Metrics (optional) and the tracer; ``turn()`` observes one turn."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.tracer = trace.get_tracer("reference_server")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Observability:
        configure_tracing(environ)
        on = environ.get(METRICS_ENV, "").strip().lower() in ("1", "on", "true", "yes")
        return cls(Metrics() if on else None)

    @contextlib.contextmanager
    def turn(self, turn_id: str, session_id: str) -> Iterator[TurnRecord]:
        """Around a turn's task: a current span, so ADK's spans inside it are its children."""
        with self.tracer.start_as_current_span("sse.turn") as span:
            span.set_attribute("sse.turn_id", turn_id)
            span.set_attribute("sse.session_id", session_id)
            yield TurnRecord(self.metrics, span)

    def stream_opened(self) -> None:
        """A response began streaming frames to a client (``stream_closed`` when it ends)."""
        if self.metrics:
            self.metrics.open_streams.inc()

    def stream_closed(self) -> None:
        if self.metrics:
            self.metrics.open_streams.dec()


_configured = False


def configure_tracing(environ: Mapping[str, str] | None = None) -> str | None:
    """Install an exporter on the global tracer provider, once, as ``WORKSHOP_TRACING`` says:
    ``console``, ``otlp``, or unset (none). Returns what was installed."""
    global _configured
    environ = os.environ if environ is None else environ
    choice = environ.get(TRACING_ENV, "").strip().lower()
    if not choice or choice in ("off", "none", "0"):
        return None
    if choice not in ("console", "otlp"):
        raise ValueError(f"{TRACING_ENV} must be console or otlp, not {choice!r}")
    if _configured:
        return choice
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if choice == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ValueError(f"{TRACING_ENV}=otlp needs pip install opentelemetry-exporter-otlp-proto-http") from None
        exporter = OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_ENDPOINT and friends
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
    return choice
