"""The reference server behind Debian's nginx (``deploy/nginx.conf.template``), as
``make serve-prod`` runs it: what the proxy does to streams, ``make serve-prod`` itself, HTTP/2.
The server's contract across workers behind it is in tests/test_scale_out.py. Without nginx these tests skip, except in CI (``.ci/run`` installs it)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from workshop.servers import serve_in_background
from workshop.servers.nginx import Nginx
from workshop.servers.paced import paced_sse_app
from workshop.servers.scaleout import free_port
from workshop.testing import require_nginx


@pytest.fixture(autouse=True)
def _needs_nginx():
    require_nginx()


# -- what the proxy does to a stream: a tiny SSE app, no ADK --------------------------------
# workshop/servers/paced.py: GET /stream sends FRAMES frames GAP_S apart (its defaults); quiet_s: a
# silence before the last one (a slow tool call), with a comment line every ping_s if set; hint=1:
# X-Accel-Buffering: no. GET /big.json: a compressible JSON answer.
FRAMES, GAP_S = 8, 0.1


@pytest.fixture(scope="module")
def tiny():
    server = serve_in_background(paced_sse_app())
    yield server
    server.stop()


def _address(server) -> tuple[str, int]:
    host, port = server.url.split("//")[1].split(":")
    return host, int(port)


def _reads(url: str) -> list[bytes]:
    """The stream's body, as the pieces the client received (up to a cut, if it was cut)."""
    pieces: list[bytes] = []
    with httpx.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        try:
            for piece in response.iter_raw():
                pieces.append(piece)
        except httpx.RemoteProtocolError:  # the proxy closed it mid-body
            pieces.append(b"<cut>")
    return pieces


def test_nginx_defaults_deliver_a_stream_in_one_piece_and_either_fix_streams_it(tiny):
    """nginx's defaults (HTTP/1.0 to the upstream, proxy_buffering on) hold every frame until the
    stream ends; ``X-Accel-Buffering: no`` from the app, or ``proxy_buffering off``, fixes it."""
    with Nginx([_address(tiny)], buffering=True, http_version="1.0") as proxy:
        held = _reads(f"{proxy.url}/stream")
        hinted = _reads(f"{proxy.url}/stream?hint=1")
    with Nginx([_address(tiny)], buffering=False, http_version="1.0") as proxy:
        unbuffered = _reads(f"{proxy.url}/stream")
    assert b"".join(held).count(b"data: frame") == FRAMES
    assert len(held) <= 2, "with nginx's defaults the frames arrive together"
    assert len(hinted) >= FRAMES // 2 and len(unbuffered) >= FRAMES // 2


def test_the_workshop_config_streams_without_help_from_the_app(tiny):
    with Nginx([_address(tiny)]) as proxy:  # deploy/nginx.conf.template as it is
        pieces = _reads(f"{proxy.url}/stream")
    assert len(pieces) >= FRAMES // 2


def test_gzip_compresses_json_but_never_an_event_stream(tiny):
    with Nginx([_address(tiny)]) as proxy:
        gz = {"Accept-Encoding": "gzip"}
        assert httpx.get(f"{proxy.url}/big.json", headers=gz).headers.get("content-encoding") == "gzip"
        with httpx.stream("GET", f"{proxy.url}/stream", headers=gz) as response:
            assert "content-encoding" not in response.headers
            response.read()


def test_a_quiet_stream_survives_proxy_read_timeout_only_with_keepalive_comments(tiny):
    """A silence longer than ``proxy_read_timeout`` (a slow tool call) cuts the stream, unless the
    server sends a comment line more often than the timeout (scaled: 1 s timeout, 2.5 s quiet)."""
    with Nginx([_address(tiny)], read_timeout_s=1) as proxy:
        cut = b"".join(_reads(f"{proxy.url}/stream?quiet_s=2.5"))
        kept = b"".join(_reads(f"{proxy.url}/stream?quiet_s=2.5&ping_s=0.4"))
    assert cut.endswith(b"<cut>") and b"event: done" not in cut
    assert cut.count(b"data: frame") == FRAMES - 1
    assert b"event: done" in kept and kept.count(b"data: frame") == FRAMES


def test_proxy_read_timeout_outlasts_the_servers_silences():
    """nginx gives up on a response whose upstream sent nothing for ``proxy_read_timeout``. The
    reference server sends no byte until the model's first event (or its first-event wait
    elapses), and an idle stream a ``: ping`` every keep-alive interval: the timeout in the config
    ``make serve-prod`` writes must exceed both, each read from where it is set."""
    from reference_server import Settings, create_app
    from workshop.stack import Stack

    stack = Stack(port=0, workers=1)
    try:
        config = stack.nginx._write_config().read_text()
    finally:
        stack.stop()
        shutil.rmtree(stack.nginx.prefix, ignore_errors=True)
    (timeout,) = re.findall(r"^\s*proxy_read_timeout\s+(\d+)s;", config, re.M)
    app = create_app(Settings.from_env({"WORKSHOP_TOKENS": "tok:user", "DATABASE_URL": "memory://"}))
    first_event_wait_s = app.state.settings.first_event_wait_s
    keepalive_s = app.state.turns.keepalive_s
    assert first_event_wait_s > 0 and keepalive_s > 0
    assert int(timeout) > max(first_event_wait_s, keepalive_s), (timeout, first_event_wait_s, keepalive_s)


# -- the reference server's workers behind nginx, live streams through Redis ----------------
# (the 409, /cancel, resumes and the grace period on SQLite, PostgreSQL and Redis stacks: tests/test_scale_out.py)
TOKEN = "tok-stack"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def redis_stack(gemini_emulator_session, redis_url, tmp_path_factory):
    from workshop.stack import Stack

    db = tmp_path_factory.mktemp("redis-stack") / "sessions.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": redis_url, "WORKSHOP_REPLAY_STORE": None,
           "WORKSHOP_REDIS_PREFIX": "stack-test:", "WORKSHOP_TOKENS": f"{TOKEN}:carol",
           "WORKSHOP_RESUME_GRACE_S": "5", "GOOGLE_GEMINI_BASE_URL": gemini_emulator_session.url,
           "GOOGLE_API_KEY": "test-key", "GOOGLE_GENAI_USE_VERTEXAI": None, "GEMINI_API_KEY": None}
    with Stack(port=0, workers=2, env=env) as running:
        yield running


def test_with_redis_a_follower_on_the_other_worker_gets_every_frame_once_as_it_comes(redis_stack, emulator):
    """A turn streams from one worker; two more clients follow it from frame 1 (nginx sends at
    least one of them to the other worker, which reads the turn from Redis): each gets every
    frame once, in order, and each frame about when the turn's own client gets it (Redis wakes the
    follower; no poll period in between)."""
    import threading

    pace_s = 0.1
    emulator.set_pacing(first_token_s=0, chunk_s=pace_s)
    assert f"live streams, 409 and /cancel across workers: Redis {redis_stack.env['REDIS_URL']}" \
        in redis_stack.describe()
    arrivals: dict[str, dict[int, float]] = {"writer": {}, "a": {}, "b": {}}
    kinds: dict[str, list[str]] = {"writer": [], "a": [], "b": []}

    def follow(name: str, session_id: str) -> None:
        with httpx.Client(base_url=redis_stack.url, timeout=30) as client, connect_sse(
                client, "GET", f"/api/sessions/{session_id}/stream",
                headers={**AUTH, "Last-Event-ID": "0"}) as source:
            assert source.response.status_code == 200
            for sse in source.iter_sse():
                arrivals[name].setdefault(int(sse.id), time.monotonic())
                kinds[name].append(sse.id)

    with httpx.Client(base_url=redis_stack.url, timeout=30) as client:
        session_id = client.post("/api/sessions", headers=AUTH).json()["session_id"]
        followers = [threading.Thread(target=follow, args=(name, session_id)) for name in ("a", "b")]
        # 4 s of frames: a worker paused 2 s moves fewer than half of them, not the median lag
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                         json={"text": "Count to 40"}, headers=AUTH) as source:
            for sse in source.iter_sse():
                arrivals["writer"][int(sse.id)] = time.monotonic()
                kinds["writer"].append(sse.id)
                if len(kinds["writer"]) == 1:
                    for thread in followers:
                        thread.start()
            last = sse
    for thread in followers:
        thread.join(30)
    assert last.event == "done"
    frames = len(kinds["writer"])
    for name in ("a", "b"):
        assert [int(i) for i in kinds[name]] == list(range(1, frames + 1)), (name, kinds[name])
        live = [arrivals[name][i] - arrivals["writer"][i] for i in range(3, frames + 1)]
        assert statistics.median(live) < pace_s, (name, live)
    workers = [r.worker for r in redis_stack.nginx.logged(f"{session_id}/", 3)]  # the POST, two followers
    assert len(set(workers)) == 2, workers  # the turn ran on one worker, a follower read it on the other
    assert len(emulator.requests) == 1


# -- make serve-prod -------------------------------------------------------------------------
def test_make_serve_prod_starts_nginx_and_workers_and_stops_them_on_ctrl_c(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL",
                        "GOOGLE_GENAI_USE_VERTEXAI", "WORKSHOP_TOKENS")}
    env.update(PORT=str(port), WORKERS="2", PYTHONUNBUFFERED="1",
               DATABASE_URL=f"sqlite:///{tmp_path}/sessions.db")
    proc = subprocess.Popen([sys.executable, "-m", "workshop.stack"], env=env, cwd=Path(__file__).parents[1],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C" in line:
                break
        output = "".join(lines)
        assert f"nginx http://127.0.0.1:{port}" in output and output.count("  worker ") == 2, output
        token = re.search(r"Development token \(every worker\): (\S+)", output).group(1)
        pids = [int(p) for p in re.findall(r"\(pid (\d+)", output)]
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            session_id = client.post("/api/sessions", headers=auth).json()["session_id"]
            body = client.post(f"/api/sessions/{session_id}/messages", headers=auth,
                               json={"text": "Count to 3"}).text
        assert "event: done" in body
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, "".join(lines) + proc.stdout.read()
    for pid in pids:  # nginx and both workers are gone
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


# -- HTTP/2 at the proxy: a browser's seventh stream ------------------------------------------
def test_over_http2_a_seventh_concurrent_stream_does_not_wait(tmp_path):
    """A browser opens at most 6 HTTP/1.1 connections to one origin: the seventh stream waits
    for one of the first six to end. Over HTTP/2 (nginx with TLS) all seven share one connection."""
    from workshop.servers.seven_streams import (
        STREAM_S,
        browser_missing,
        in_browser,
        seven_streams_app,
    )

    if reason := browser_missing():
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
        pytest.skip(reason)
    app = serve_in_background(seven_streams_app())
    try:
        with Nginx([_address(app)]) as h1, Nginx([_address(app)], http2=True) as h2:
            results = in_browser({"http/1.1": f"{h1.url}/page", "h2": f"{h2.url}/page"})
    finally:
        app.stop()
    h1_firsts = sorted(results["http/1.1"]["firsts"])
    h2_firsts = sorted(results["h2"]["firsts"])
    assert set(results["http/1.1"]["protocols"]) == {"http/1.1"}
    assert set(results["h2"]["protocols"]) == {"h2"}
    # HTTP/1.1: the seventh first frame comes only after a whole stream has ended.
    assert h1_firsts[6] >= STREAM_S * 1000 * 0.9, h1_firsts
    # HTTP/2: every stream has its first frame long before any stream ends.
    assert h2_firsts[6] < STREAM_S * 1000 * 0.5, h2_firsts
