"""The reference server is product: copied alone into a fresh project, it must work with pip
packages only. Nothing in it may import the workshop (the harness: emulator, setup, checks).

The copy runs under ``WORKSHOP_SERVER_PYTHON`` when set: ``make test-copy`` points it at a virtual
environment holding only ``reference_server/requirements.txt``, so a package the server imports
but the file leaves out fails here. Unset, the copy runs with this interpreter."""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reference_server"
# Run first in a child interpreter: any import of the workshop package then fails.
BLOCK_WORKSHOP = "import sys; sys.modules['workshop'] = None\n"
SERVER_PYTHON = os.environ.get("WORKSHOP_SERVER_PYTHON") or sys.executable


def test_no_module_of_the_server_imports_the_workshop():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                          for name in names if name.split(".")[0] == "workshop"]
    assert offenders == []


def _copy_alone(tmp_path: Path) -> Path:
    """The package copied into an empty folder outside the repository, as a reader copies it."""
    project = tmp_path / "my_service"
    shutil.copytree(PACKAGE, project / "reference_server",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return project


def test_every_module_imports_with_the_workshop_blocked(tmp_path):
    project = _copy_alone(tmp_path)
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    code = BLOCK_WORKSHOP + "import importlib, reference_server\n" + "".join(
        f"importlib.import_module('reference_server.{name}')\n" for name in modules) + (
        "print(reference_server.__file__)\n")
    done = subprocess.run([SERVER_PYTHON, "-c", code], cwd=project, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(project)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(project / "reference_server" / "__init__.py")


@contextlib.contextmanager
def serving_copy(tmp_path: Path, **extra_env: str) -> Iterator[str]:
    """``python -m reference_server`` from a copy (the workshop blocked) on a free port, pointed
    at a Gemini-compatible endpoint (here the emulator); yields its URL. Token ``tok-copy``."""
    project = _copy_alone(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(project), "PORT": "0", "PYTHONUNBUFFERED": "1",
           "WORKSHOP_TOKENS": "tok-copy:carol", "DATABASE_URL": f"sqlite:///{tmp_path}/s.db",
           "LOG_LEVEL": "info", **extra_env}
    code = BLOCK_WORKSHOP + "import runpy; runpy.run_module('reference_server', run_name='__main__')"
    proc = subprocess.Popen([SERVER_PYTHON, "-c", code], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if found := re.search(r"Uvicorn running on (http://\S+)", line):
                url = found.group(1)
        assert url, "".join(lines)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


AUTH = {"Authorization": "Bearer tok-copy"}


def stream_a_turn(url: str, text: str = "Count to 5") -> str:
    with httpx.Client(base_url=url, timeout=30) as client:
        session_id = client.post("/api/sessions", headers=AUTH).json()["session_id"]
        with client.stream("POST", f"/api/sessions/{session_id}/messages", headers=AUTH,
                           json={"text": text}) as response:
            assert response.status_code == 200
            return response.read().decode().replace("\r", "")


def test_the_copy_alone_serves_a_streamed_turn(tmp_path, emulator):
    """A session, a streamed answer, ``done``; sessions in the file DATABASE_URL names."""
    with serving_copy(tmp_path) as url:
        body = stream_a_turn(url)
    assert "event: done" in body and "1, 2, 3, 4, 5" in body
    assert (tmp_path / "s.db").exists()  # sessions went where DATABASE_URL said


class OtlpReceiver:
    """An OTLP/HTTP trace endpoint on loopback (what a collector offers on port 4318): keeps
    each ``POST /v1/traces`` body (protobuf ``ExportTraceServiceRequest``)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                bodies.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        spans = []
        for path, body in list(self.bodies):
            assert path == "/v1/traces"
            request = ExportTraceServiceRequest.FromString(body)
            spans += [span for resource in request.resource_spans for scope in resource.scope_spans
                      for span in scope.spans]
        return spans


def test_the_copy_exports_its_traces_over_otlp_and_serves_metrics(tmp_path, emulator):
    """``WORKSHOP_TRACING=otlp`` (the pinned OTLP/HTTP exporter) sends a turn's span, with ADK's
    own spans inside it, to ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``WORKSHOP_METRICS=on`` serves
    ``/metrics``. From the copy, so under ``make test-copy`` with its own requirements only."""
    receiver = OtlpReceiver()
    try:
        with serving_copy(tmp_path, WORKSHOP_TRACING="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
                          OTEL_BSP_SCHEDULE_DELAY="100", WORKSHOP_METRICS="on") as url:
            assert "event: done" in stream_a_turn(url)
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
            assert re.search(r'^sse_turns_total\{code="",outcome="done"\} 1\.0$', metrics, re.M), metrics
            deadline = time.monotonic() + 30
            while not any(span.name == "sse.turn" for span in receiver.spans()):
                assert time.monotonic() < deadline, [span.name for span in receiver.spans()]
                time.sleep(0.1)
            time.sleep(0.5)  # ADK's spans end before the turn's; a batch may still be on its way
        spans = receiver.spans()
    finally:
        receiver.server.shutdown()
    turn = next(span for span in spans if span.name == "sse.turn")
    inside = [span for span in spans if span.trace_id == turn.trace_id and span is not turn]
    names = {span.name.split(" ")[0] for span in inside}  # "invoke_agent assistant"...
    assert {"invoke_agent", "generate_content"} <= names, names  # ADK 2.13's GenAI span names
    attributes = {a.key for a in turn.attributes}
    assert {"sse.turn_id", "sse.outcome"} <= attributes, attributes
