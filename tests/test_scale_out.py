"""Scale-out: two real server processes (``python -m workshop.reference_server``) behind one
port (a round-robin TCP proxy), sharing the database. A conversation started on one continues
on the other; with the replay buffer in the database (``WORKSHOP_REPLAY_STORE=database``) a
stream cut on one process resumes on the other; with the default in-memory buffer such a resume
gets a clear JSON 404 at once (see notebook 09, "Scale-out").
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from httpx_sse import connect_sse

from workshop.reference_server import BackgroundServer, Settings, create_app
from workshop.reference_server.persistence import session_service_from_url
from workshop.reference_server.scaleout import RoundRobinProxy, start_processes
from workshop.testing import postgres_url

TOKENS = "tok-alice:alice,tok-bob:bob"
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}


def server_env(emulator_url: str, database_url: str) -> dict[str, str]:
    env = {"DATABASE_URL": database_url, "WORKSHOP_TOKENS": TOKENS,
           "GOOGLE_GEMINI_BASE_URL": emulator_url, "GOOGLE_API_KEY": "test-key",
           "WORKSHOP_RESUME_GRACE_S": "5", "GEMINI_API_KEY": None, "GOOGLE_GENAI_USE_VERTEXAI": None}
    return env


def request(method: str, url: str, **kwargs) -> httpx.Response:
    """A request on a connection of its own, so that the proxy sends it to the next process."""
    with httpx.Client(timeout=30, headers={"Connection": "close"}) as client:
        return client.request(method, url, **kwargs)


def turn(base: str, session_id: str, text: str) -> list[tuple[str, str]]:
    with httpx.Client(timeout=30, headers={**ALICE, "Connection": "close"}) as client:
        with connect_sse(client, "POST", f"{base}/api/sessions/{session_id}/messages",
                         json={"text": text}) as source:
            assert source.response.status_code == 200, source.response.read()
            return [(sse.event, sse.data) for sse in source.iter_sse()]


def final_text(frames) -> str:
    events = [json.loads(data) for event, data in frames if event == "message"]
    return "".join(p.get("text", "") for e in events if not e.get("partial")
                   for p in e.get("content", {}).get("parts", []))


def continue_across_processes(emulator, proxy, servers) -> None:
    before = list(proxy.connections)
    created = request("POST", f"{proxy.url}/api/sessions", headers=ALICE)  # process k
    assert created.status_code == 201
    session_id = created.json()["session_id"]
    first = turn(proxy.url, session_id, "Count to 3")  # process k+1
    second = turn(proxy.url, session_id, "What is the capital of France?")  # process k
    assert first[-1][0] == "done" and second[-1][0] == "done"
    assert [b - a for a, b in zip(before, proxy.connections, strict=True)] in ([2, 1], [1, 2])  # both served
    # The second turn ran on the other process than the first, and its model request held the
    # first turn, read from the shared database.
    contents = emulator.requests[-1].body["contents"]
    assert ["".join(p.get("text", "") for p in c["parts"]) for c in contents] == [
        "Count to 3", final_text(first), "What is the capital of France?"]
    # Ownership is in the database too: Bob gets 404 from both processes.
    for _ in servers:
        answer = request("POST", f"{proxy.url}/api/sessions/{session_id}/messages", headers=BOB,
                         json={"text": "Hello"})
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "SESSION_NOT_FOUND"


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_processes_share_conversations_and_streams(database, emulator, gemini_emulator_session,
                                                       tmp_path):
    """Two processes on one database (SQLite in WAL mode, or PostgreSQL), sharing sessions and the
    replay buffer (``WORKSHOP_REPLAY_STORE=database``), behind one proxy port."""
    url = f"sqlite:///{tmp_path / 'sessions.db'}" if database == "sqlite" else postgres_url()
    env = {**server_env(gemini_emulator_session.url, url), "WORKSHOP_REPLAY_STORE": "database"}
    servers = start_processes(2, env)
    try:
        with RoundRobinProxy([s.address for s in servers]) as proxy:
            continue_across_processes(emulator, proxy, servers)
        resume_across_processes(emulator, *servers)
        assert all(s.process.poll() is None for s in servers)
    finally:
        for server in servers:
            server.stop()


def test_resume_on_the_other_server_is_a_clear_404_with_the_default_store(emulator, tmp_path):
    """By default the replay buffer is in the memory of the server that ran the turn. A resume
    that the balancer sends to another server (same database) is answered at once with JSON, no
    hang; on the server that ran the turn it replays the frames. (Two servers in this process
    are enough to show it: they share nothing but the database file.)"""
    url = f"sqlite:///{tmp_path / 'sessions.db'}"

    def server() -> BackgroundServer:
        settings = Settings(tokens={"tok-alice": "alice"}, session_service=session_service_from_url(url))
        return BackgroundServer(create_app(settings))

    with server() as a, server() as b:
        session_id = request("POST", f"{a.url}/api/sessions", headers=ALICE).json()["session_id"]
        frames = turn(a.url, session_id, "Count to 3")  # the turn runs on a
        assert frames[-1][0] == "done"
        began = time.monotonic()
        elsewhere = request("GET", f"{b.url}/api/sessions/{session_id}/stream",
                            headers={**ALICE, "Last-Event-ID": "1"})
        assert time.monotonic() - began < 5
        assert elsewhere.status_code == 404, elsewhere.text
        assert elsewhere.headers["content-type"].startswith("application/json")
        assert elsewhere.json()["error"]["code"] == "NO_TURN_TO_RESUME"
        here = request("GET", f"{a.url}/api/sessions/{session_id}/stream",
                       headers={**ALICE, "Last-Event-ID": "1"})
        assert here.status_code == 200 and "event: done" in here.text


# -- the replay buffer in the shared database (WORKSHOP_REPLAY_STORE=database) ----------------
def resume_across_processes(emulator, a, b) -> None:
    """Cut the stream on process a after a few frames; resume on process b with Last-Event-ID:
    the missed frames and the rest, to done, nothing lost or repeated, the model called once."""
    emulator.set_pacing(first_token_s=0.05, chunk_s=0.05)
    session_id = request("POST", f"{a.url}/api/sessions", headers=ALICE).json()["session_id"]
    seen: list[tuple[str, str | None, str]] = []
    with httpx.Client(timeout=30, headers={**ALICE, "Connection": "close"}) as client:
        with connect_sse(client, "POST", f"{a.url}/api/sessions/{session_id}/messages",
                         json={"text": "Count to 10"}) as source:
            assert source.response.status_code == 200
            for sse in source.iter_sse():
                seen.append((sse.id, sse.event, sse.data))
                if len(seen) == 3:
                    break  # the connection drops here
    calls = len(emulator.requests)
    with httpx.Client(timeout=30, headers={**ALICE, "Last-Event-ID": seen[-1][0]}) as client:
        with connect_sse(client, "GET", f"{b.url}/api/sessions/{session_id}/stream") as source:
            assert source.response.status_code == 200, source.response.read()
            seen += [(sse.id, sse.event, sse.data) for sse in source.iter_sse()]
    assert [int(frame_id) for frame_id, _, _ in seen] == list(range(1, len(seen) + 1))
    assert seen[-1][1] == "done" and json.loads(seen[-1][2])["events"] == len(seen) - 1
    streamed = "".join(p.get("text", "") for _, event, data in seen if event == "message"
                       for e in [json.loads(data)] if e.get("partial")
                       for p in e.get("content", {}).get("parts", []))
    assert streamed == final_text([(event, data) for _, event, data in seen])
    assert len(emulator.requests) == calls  # replayed from the database, no second model call
    # The tail stays resumable from either process after the end.
    for server in (a, b):
        again = request("GET", f"{server.url}/api/sessions/{session_id}/stream",
                        headers={**ALICE, "Last-Event-ID": str(len(seen) - 1)})
        assert again.status_code == 200 and again.text.count("event: done") == 1


async def _store_semantics(url: str) -> None:
    from workshop.reference_server.persistence import DatabaseReplayStore
    from workshop.reference_server.replay import Frame

    now = [1000.0]
    sid = f"s-{uuid.uuid4().hex}"  # the PostgreSQL database outlives the test
    store = DatabaseReplayStore(url, ttl_s=60, poll_s=0.01, clock=lambda: now[0])
    other = DatabaseReplayStore(url, ttl_s=60, poll_s=0.01, clock=lambda: now[0])  # "another process"
    assert await store.read(sid, 0) is None
    await store.open_turn(sid, "t1")
    await store.append(sid, "t1", Frame(1, None, '{"n": 1}'))
    tail = await other.read(sid, 0)
    assert tail.turn_id == "t1" and [f.id for f in tail.frames] == [1] and not tail.finished
    waiter = asyncio.create_task(other.wait(sid, 1, timeout=5))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.append(sid, "t1", Frame(2, "done", '{"events": 1}'))
    await asyncio.wait_for(waiter, 2)  # woken by polling the table
    tail = await other.read(sid, 1)
    assert [f.event for f in tail.frames] == ["done"] and tail.finished
    await store.append(sid, "t1", Frame(3, None, "{}"))  # after the end: ignored
    assert [f.id for f in (await other.read(sid, 0)).frames] == [1, 2]
    await store.open_turn(sid, "t2")  # a new turn replaces the old one's frames
    assert (await other.read(sid, 0)).frames == []
    await store.append(sid, "t1", Frame(1, None, "{}"))  # the old turn: ignored
    assert (await other.read(sid, 0)).frames == []
    await store.append(sid, "t2", Frame(1, "done", "{}"))
    now[0] += 61
    assert await other.purge() == 1 and await other.read(sid, 0) is None
    await store.close()
    await other.close()


def test_database_replay_store_semantics_on_sqlite(tmp_path):
    asyncio.run(_store_semantics(f"sqlite:///{tmp_path / 'replay.db'}"))


def test_database_replay_store_semantics_on_postgresql():
    asyncio.run(_store_semantics(postgres_url()))
