"""Graceful drain (reference_server/drain.py): one worker of two behind real nginx gets SIGTERM
mid-answer. A short turn finishes; a long one (longer than WORKSHOP_DRAIN_S, by the emulator's
pacing) ends with the retryable ``SERVER_RESTARTING`` and is answered whole by the other worker
when the client sends it again; new turns meanwhile go to the other worker; nothing of the cut
answer stays in the session; the worker restarted on the same port serves again."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import HTTPException
from httpx_sse import connect_sse

from reference_server import Settings, create_app
from reference_server.app import repeat_of
from reference_server.turns import live_events
from workshop.servers.nginx import INSTALL_HINT, Nginx, nginx_binary
from workshop.servers.scaleout import ServerProcess, start_processes

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-drain"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DRAIN_S = 3.0  # WORKSHOP_DRAIN_S of the workers
CHUNK_S = 0.05  # the emulator's pacing: "Count to N" streams about N chunks this far apart
SHORT_N = 8  # about 0.4 s of answer: well inside the drain (ratio 7)
LONG_N = 200  # about 10 s: well past it (ratio 3)


def _needs_nginx():
    if nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the nginx tests: {INSTALL_HINT}")
        pytest.skip(f"no nginx: {INSTALL_HINT}")


class Cluster:
    """Two workers on one SQLite database and the database replay store, nginx in front."""

    def __init__(self, env: dict) -> None:
        self.env = env
        self.workers = start_processes(2, env)
        self.nginx = Nginx([w.address for w in self.workers]).start()

    def owner(self) -> int:
        """The worker streaming a turn now (its open-streams gauge, read from it directly)."""
        open_streams = []
        for worker in self.workers:
            text = httpx.get(f"{worker.url}/metrics", timeout=10).text
            open_streams.append(float(re.search(r"^sse_open_streams (\S+)$", text, re.M).group(1)))
        assert sorted(open_streams) == [0.0, 1.0], open_streams
        return open_streams.index(1.0)

    def restart(self, index: int) -> ServerProcess:
        """Wait for the worker to exit, then start a new one on the same port."""
        old = self.workers[index]
        old.stop()
        # uvicorn re-raises the SIGTERM it handled once it is done: -15, not a SIGKILL's -9.
        assert old.process.returncode in (0, -15), old.log()[-2000:]
        self.workers[index] = ServerProcess(self.env, port=old.port).start(60)
        return self.workers[index]

    def stop(self) -> None:
        self.nginx.stop()
        for worker in self.workers:
            worker.stop()


@pytest.fixture(scope="module")
def cluster(gemini_emulator_session, tmp_path_factory):
    _needs_nginx()
    db = tmp_path_factory.mktemp("drain") / "sessions.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "WORKSHOP_REPLAY_STORE": "database",
           "WORKSHOP_TOKENS": f"{TOKEN}:dana", "WORKSHOP_METRICS": "on",
           "WORKSHOP_DRAIN_S": str(DRAIN_S), "GOOGLE_GEMINI_BASE_URL": gemini_emulator_session.url,
           "GOOGLE_API_KEY": "test-key", "GOOGLE_GENAI_USE_VERTEXAI": None, "GEMINI_API_KEY": None}
    running = Cluster(env)
    yield running
    running.stop()


# -- in one process: the drain itself, no HTTP ------------------------------------------------
async def _drain_scenario(text: str, drain_s: float) -> dict:
    """A turn of ``text`` running when the drain starts: what the drain did and left."""
    settings = Settings(tokens={TOKEN: "dana"}, database_url="memory://", drain_s=drain_s)
    app = create_app(settings)
    turns, drain = app.state.turns, app.state.drain
    session = await settings.session_service.create_session(app_name=settings.app_name, user_id="dana")
    turn = await turns.start("dana", session.id, text, key="k1")
    await turn.decided.wait()  # the answer is streaming
    began = time.monotonic()
    await drain.run()
    took = time.monotonic() - began
    with pytest.raises(HTTPException) as refused:
        drain.refuse_new_turn()
    tail = await turns.store.read(session.id, 0)
    full = await settings.session_service.get_session(app_name=settings.app_name, user_id="dana",
                                                      session_id=session.id)
    await turns.close()
    return {"took": took, "last": tail.frames[-1], "refused": refused.value,
            "history": [e.content.role for e in live_events(full.events) if e.content],
            "repeat": await repeat_of(session.id, turns, "k1"), "closing": turns.closing}


def test_drain_lets_a_short_turn_finish(emulator):
    emulator.set_pacing(chunk_s=CHUNK_S)
    seen = asyncio.run(_drain_scenario(f"Count to {SHORT_N}", drain_s=30))
    assert seen["last"].kind == "done" and seen["history"] == ["user", "model"]
    assert seen["took"] < 30 / 2  # it returned when the turn ended, not at the bound
    assert seen["refused"].status_code == 503 and seen["refused"].headers["Retry-After"]
    assert seen["refused"].detail["code"] == "SERVER_DRAINING"


def test_drain_hands_a_long_turn_over_rewound(emulator):
    emulator.set_pacing(chunk_s=CHUNK_S)
    seen = asyncio.run(_drain_scenario(f"Count to {LONG_N}", drain_s=0.5))
    assert seen["took"] >= 0.5 * 0.9
    last = seen["last"]
    assert (last.kind, last.code) == ("error", "SERVER_RESTARTING")
    assert json.loads(last.data)["error"]["retry"] == "resend"
    assert seen["history"] == []  # neither the message nor a half answer stays
    assert seen["repeat"] is None  # the same Idempotency-Key starts a new turn, no replay
    assert seen["closing"]  # after the handover: streams of turns running elsewhere end


# -- two worker processes behind nginx ---------------------------------------------------------
def _wait_until_draining(worker: ServerProcess, timeout_s: float = 30) -> None:
    """Until the worker has handled its SIGTERM (its /healthz says 503)."""
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{worker.url}/healthz", timeout=10).status_code != 503:
        assert time.monotonic() < deadline, "the worker did not start draining"
        time.sleep(0.05)


def _session(client: httpx.Client) -> str:
    return client.post("/api/sessions", headers=AUTH).json()["session_id"]


def _text(frames, partial: bool = False) -> str:
    """The answer: the text of the non-partial events (``partial``: of the pieces streamed)."""
    text = ""
    for sse in frames:
        if sse.event == "message" and sse.data:
            event = json.loads(sse.data)
            if bool(event.get("partial")) == partial:
                text += "".join(p.get("text", "") for p in (event.get("content") or {}).get("parts") or [])
    return text


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


def _history(client: httpx.Client, session_id: str) -> list[tuple[str, str]]:
    events = client.get(f"/api/sessions/{session_id}/events", headers=AUTH).json()["events"]
    return [(e["content"].get("role"), "".join(p.get("text", "") for p in e["content"]["parts"]))
            for e in events if e.get("content")]


def test_a_short_turn_running_at_sigterm_finishes(cluster, emulator):
    emulator.set_pacing(chunk_s=CHUNK_S)
    with httpx.Client(base_url=cluster.nginx.url, timeout=30) as client:
        session_id = _session(client)
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                         json={"text": f"Count to {SHORT_N}"}, headers=AUTH) as source:
            frames = source.iter_sse()
            seen = [next(frames)]  # the turn is streaming
            owner = cluster.owner()
            cluster.workers[owner].terminate()
            seen += list(frames)
        assert seen[-1].event == "done", seen[-1]
        assert _numbers(_text(seen)) == list(range(1, SHORT_N + 1))
        assert _history(client, session_id) == [("user", f"Count to {SHORT_N}"), ("model", _text(seen))]
    cluster.restart(owner)


def test_a_long_turn_is_handed_over_and_answered_whole_by_the_other_worker(cluster, emulator):
    emulator.set_pacing(chunk_s=CHUNK_S)
    question = f"Count to {LONG_N}"
    with httpx.Client(base_url=cluster.nginx.url, timeout=30) as client:
        session_id = _session(client)
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                         json={"text": question}, headers=AUTH) as source:
            frames = source.iter_sse()
            seen = [next(frames)]
            owner = cluster.owner()
            draining = cluster.workers[owner]
            other = cluster.workers[1 - owner]
            draining.terminate()
            signalled = time.monotonic()
            _wait_until_draining(draining)

            # While it drains: the worker itself refuses a new turn before any byte, and says
            # so to load balancers; through nginx a new turn is answered by the other worker.
            refused = httpx.post(f"{draining.url}/api/sessions/{_session(client)}/messages",
                                 json={"text": "hi"}, headers=AUTH, timeout=10)
            assert refused.status_code == 503 and "retry-after" in refused.headers
            assert refused.json()["error"]["code"] == "SERVER_DRAINING"
            meanwhile = _session(client)
            for _ in range(2):  # round robin: at least one of them goes to the draining worker first
                with connect_sse(client, "POST", f"/api/sessions/{meanwhile}/messages",
                                 json={"text": "Count to 3"}, headers=AUTH) as other_source:
                    assert other_source.response.status_code == 200
                    assert [e.event for e in other_source.iter_sse()][-1] == "done"

            seen += list(frames)
            ended_after = time.monotonic() - signalled
        end = seen[-1]
        assert end.event == "error", end
        error = json.loads(end.data)["error"]
        assert error["code"] == "SERVER_RESTARTING" and error["retry"] == "resend"
        assert ended_after >= DRAIN_S * 0.9  # it had its drain time first
        assert _text(seen) == ""  # it was cut: pieces of the answer, never the whole
        assert 0 < len(_numbers(_text(seen, partial=True))) < LONG_N

        # The client sends the same message again: the other worker answers it whole.
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                         json={"text": question}, headers=AUTH) as source:
            again = list(source.iter_sse())
        assert again[-1].event == "done"
        answer = _text(again)
        assert _numbers(answer) == list(range(1, LONG_N + 1))
        # One user message, one answer: nothing of the cut attempt.
        assert _history(client, session_id) == [("user", question), ("model", answer)]
        # Every new turn during the drain was answered by the other worker (after a 503 from the
        # draining one, nginx passed it on).
        meanwhile_tries = cluster.nginx.logged(f"{meanwhile}/messages", 2)
        assert any(len(r.tried) > 1 for r in meanwhile_tries), meanwhile_tries  # a 503 passed on
        for request in meanwhile_tries:
            assert request.worker == f"{other.host}:{other.port}", request
        assert cluster.nginx.logged(f"{session_id}/messages", 2)[-1].worker == f"{other.host}:{other.port}"

    # The restarted worker (same port) serves again.
    restarted = cluster.restart(owner)
    emulator.set_pacing(chunk_s=0)
    with httpx.Client(base_url=restarted.url, timeout=30) as client:
        with connect_sse(client, "POST", f"/api/sessions/{_session(client)}/messages",
                         json={"text": "Count to 3"}, headers=AUTH) as source:
            assert [e.event for e in source.iter_sse()][-1] == "done"


def test_sse_client_sends_the_message_again_when_its_worker_restarts(cluster, emulator):
    """examples/sse_client.py, through nginx: SIGTERM to the worker answering it, mid-answer;
    it prints the whole answer after the cut one, and exits 0."""
    emulator.set_pacing(chunk_s=CHUNK_S)
    with httpx.Client(base_url=cluster.nginx.url, timeout=30) as client:
        session_id = _session(client)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "sse_client.py"), f"Count to {LONG_N}",
         "--url", cluster.nginx.url, "--token", TOKEN, "--session", session_id],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdout.read(1)  # the answer is streaming
        owner = cluster.owner()
        cluster.workers[owner].terminate()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "SERVER_RESTARTING" in err and "[resending]" in err
    assert _numbers(out.splitlines()[-1]) == list(range(1, LONG_N + 1))
    with httpx.Client(base_url=cluster.nginx.url, timeout=30) as client:
        assert [a for a, _ in _history(client, session_id)] == ["user", "model"]
    cluster.restart(owner)


def test_the_chat_page_sends_the_message_again_when_its_worker_restarts(cluster, emulator):
    """The chat page through nginx: its worker gets SIGTERM mid-answer; the page clears the cut
    answer, sends the message again, and shows the whole answer from the other worker."""
    from test_browser_chat import chromium

    emulator.set_pacing(chunk_s=CHUNK_S)
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{cluster.nginx.url}/?token={TOKEN}")
        page.wait_for_selector("#message:not([disabled])", timeout=15000)
        page.fill("#message", f"Count to {LONG_N}")
        page.press("#message", "Enter")
        page.wait_for_function("document.querySelector('.turn:last-child .answer')?.textContent.length > 8",
                               timeout=30000)
        owner = cluster.owner()
        cluster.workers[owner].terminate()
        page.wait_for_selector(".turn:last-child[data-state=done]", timeout=90000)
        answer = page.inner_text(".turn:last-child .bubble.model")
        session_id = page.evaluate("document.getElementById('connection').dataset.session")
    assert _numbers(answer) == list(range(1, LONG_N + 1))  # the whole answer, once
    assert len(emulator.requests) == 2  # the cut one and the one sent again
    with httpx.Client(base_url=cluster.nginx.url, timeout=30) as client:
        assert [a for a, _ in _history(client, session_id)] == ["user", "model"]
    cluster.restart(owner)


def test_a_follower_on_a_draining_worker_ends_with_the_drain_and_resumes_on_the_other_one(cluster, emulator):
    """A turn runs on one worker; its client follows it on the other (a resume that landed
    there). SIGTERM to the follower's worker: it owns no turn, so its drain ends at once; its
    stream then ends cleanly, with no terminal frame, and the worker exits, instead of keeping
    the stream until uvicorn's graceful timeout (drain + SHUTDOWN_MARGIN_S) and cutting it. The
    client resumes through nginx (the stopped worker no longer listens: nginx passes the
    connection on) and gets every frame after the end once."""
    from reference_server.drain import SHUTDOWN_MARGIN_S

    emulator.set_pacing(chunk_s=CHUNK_S)
    n = 2 * LONG_N  # about 20 s: the turn outlives the follower's worker
    owner, follower_worker = cluster.workers
    with httpx.Client(timeout=60) as client:
        session_id = _session(httpx.Client(base_url=owner.url, timeout=30))
        with connect_sse(client, "POST", f"{owner.url}/api/sessions/{session_id}/messages",
                         json={"text": f"Count to {n}"}, headers=AUTH) as source:
            assert source.response.status_code == 200
            turn_id = source.response.headers["X-Turn-Id"]
            owner_frames = source.iter_sse()
            next(owner_frames)  # the turn is streaming (the owner keeps it: a reader remains)
            with connect_sse(client, "GET", f"{follower_worker.url}/api/sessions/{session_id}/stream",
                             headers={**AUTH, "Last-Event-ID": "0"}) as follow:
                assert follow.response.status_code == 200
                frames = follow.iter_sse()
                seen = [next(frames)]
                follower_worker.terminate()
                signalled = time.monotonic()
                seen += list(frames)  # ends cleanly: no RemoteProtocolError
                ended_after = time.monotonic() - signalled
            follower_worker.process.wait(timeout=30)
            exited_after = time.monotonic() - signalled
            assert all(sse.event == "message" for sse in seen)  # no terminal frame: resume
            # the stream at once (no turn of its own to wait for: within the follower's 1 s poll),
            # the process before uvicorn's graceful timeout would have cut it (drain + margin)
            assert ended_after < SHUTDOWN_MARGIN_S, (ended_after, exited_after)
            assert exited_after < DRAIN_S + SHUTDOWN_MARGIN_S, (ended_after, exited_after)
            assert int(seen[-1].id) < n  # the turn was still running
            with connect_sse(client, "GET", f"{cluster.nginx.url}/api/sessions/{session_id}/stream",
                             params={"turn": turn_id},
                             headers={**AUTH, "Last-Event-ID": seen[-1].id}) as resumed:
                assert resumed.response.status_code == 200
                seen += list(resumed.iter_sse())
            assert [sse.event for sse in owner_frames][-1] == "done"  # the owner's own stream
    assert [int(sse.id) for sse in seen] == list(range(1, len(seen) + 1))  # each frame once
    assert seen[-1].event == "done"
    assert _numbers(_text(seen)) == list(range(1, n + 1))
    assert cluster.nginx.logged(f"{session_id}/stream")[-1].worker == f"{owner.host}:{owner.port}"
    cluster.restart(1)
