"""Scale-out: two real server processes (``python -m reference_server``) behind one
port (a round-robin TCP proxy), sharing the database. A conversation started on one continues
on the other; with the replay buffer in the database (``WORKSHOP_REPLAY_STORE=database``) a
stream cut on one process resumes on the other; with the default in-memory buffer such a resume
gets a clear JSON 404 at once (see notebook 09, "Scale-out").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid

import httpx
import pytest
from httpx_sse import connect_sse

from reference_server import Settings, create_app
from reference_server.persistence import session_service_from_url
from workshop.servers import BackgroundServer
from workshop.servers.scaleout import RoundRobinProxy, start_processes
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
    from reference_server.persistence import DatabaseReplayStore
    from reference_server.replay import Frame

    now = [1000.0]
    sid = f"s-{uuid.uuid4().hex}"  # the PostgreSQL database outlives the test
    store = DatabaseReplayStore(url, ttl_s=60, poll_s=0.01, clock=lambda: now[0])
    other = DatabaseReplayStore(url, ttl_s=60, poll_s=0.01, clock=lambda: now[0])  # "another process"
    assert await store.read(sid, 0) is None
    assert await store.begin_turn(sid, "t1", owner_stale_s=15)
    assert not await other.begin_turn(sid, "t0", owner_stale_s=15)  # t1 runs: refused
    await store.append(sid, "t1", Frame(1, "event", '{"n": 1}'))
    tail = await other.read(sid, 0)
    assert tail.turn_id == "t1" and [f.id for f in tail.frames] == [1] and not tail.finished
    waiter = asyncio.create_task(other.wait(sid, 1, timeout=5))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.append(sid, "t1", Frame(2, "done", '{"events": 1}'))
    await asyncio.wait_for(waiter, 2)  # woken by polling the table
    tail = await other.read(sid, 1)
    assert [f.kind for f in tail.frames] == ["done"] and tail.finished
    await store.append(sid, "t1", Frame(3, "event", "{}"))  # after the end: ignored
    assert [f.id for f in (await other.read(sid, 0)).frames] == [1, 2]
    assert await store.begin_turn(sid, "t2", owner_stale_s=15)  # t1 ended: t2 replaces its frames
    assert (await other.read(sid, 0)).frames == []
    await store.append(sid, "t1", Frame(1, "event", "{}"))  # the old turn: ignored
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


# -- turn state across processes (shared store): 409, cancel, grace, a dead owner ---------------
def database_url(database: str, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'sessions.db'}" if database == "sqlite" else postgres_url()


def shared_server(url: str, **settings) -> BackgroundServer:
    """A reference server on the shared database, sessions and replay buffer: in this process
    but sharing nothing in memory with another one built the same way (as two processes)."""
    from reference_server.persistence import DatabaseReplayStore

    return BackgroundServer(create_app(Settings(
        tokens={"tok-alice": "alice"}, session_service=session_service_from_url(url),
        replay_store=DatabaseReplayStore(url), **settings)))


def open_stream(base: str, session_id: str, text: str, frames_first: int = 3):
    """Start a turn and read its first frames; returns (context, iterator, frames)."""
    client = httpx.Client(timeout=30, headers={**ALICE, "Connection": "close"})
    ctx = connect_sse(client, "POST", f"{base}/api/sessions/{session_id}/messages", json={"text": text})
    source = ctx.__enter__()
    assert source.response.status_code == 200, source.response.read()
    it = source.iter_sse()
    frames = [next(it) for _ in range(frames_first)]
    return ctx, it, frames


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_another_process_answers_409_and_cancels_the_turn(database, emulator, tmp_path):
    url = database_url(database, tmp_path)
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    with shared_server(url) as a, shared_server(url) as b:
        session_id = request("POST", f"{a.url}/api/sessions", headers=ALICE).json()["session_id"]
        ctx, it, frames = open_stream(a.url, session_id, "Count to 300")
        try:
            busy = request("POST", f"{b.url}/api/sessions/{session_id}/messages", headers=ALICE,
                           json={"text": "Hello"})
            assert busy.status_code == 409 and busy.json()["error"]["code"] == "TURN_IN_PROGRESS"
            began = time.monotonic()
            answer = request("POST", f"{b.url}/api/sessions/{session_id}/cancel", headers=ALICE)
            took = time.monotonic() - began
            assert answer.json() == {"cancelled": True}
            assert took < 1.5, f"a cancel through another process took {took:.2f} s"
            frames += list(it)
        finally:
            ctx.__exit__(None, None, None)
        assert frames[-1].event == "cancelled" and json.loads(frames[-1].data) == {"reason": "cancel_requested"}
        model_request = emulator.requests[-1]
        deadline = time.monotonic() + 3
        while model_request.outcome == "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert model_request.outcome == "client_closed"  # a closed the model's request
        assert request("POST", f"{b.url}/api/sessions/{session_id}/cancel", headers=ALICE).json() == {"cancelled": False}
        assert turn(b.url, session_id, "Count to 2")[-1][0] == "done"  # the session works, on b


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_client_following_from_another_process_keeps_the_turn_alive(database, emulator, tmp_path):
    """The client moves to b (resumes there), then its connection to a drops: a's grace period
    ends, yet a keeps the turn running because b says a client follows it."""
    import threading

    url = database_url(database, tmp_path)
    grace = 0.5
    emulator.set_pacing(first_token_s=0, chunk_s=0.03)
    with shared_server(url, resume_grace_s=grace) as a, shared_server(url, resume_grace_s=grace) as b:
        session_id = request("POST", f"{a.url}/api/sessions", headers=ALICE).json()["session_id"]
        ctx, it, frames = open_stream(a.url, session_id, "Count to 100")  # about 3 s of answer
        rest: list = []
        following = threading.Event()

        def follow_on_b() -> None:
            with httpx.Client(timeout=30, headers={**ALICE, "Last-Event-ID": frames[-1].id}) as client:
                with connect_sse(client, "GET", f"{b.url}/api/sessions/{session_id}/stream") as source:
                    for sse in source.iter_sse():
                        rest.append(sse)
                        following.set()

        reader = threading.Thread(target=follow_on_b)
        reader.start()
        assert following.wait(10)
        ctx.__exit__(None, None, None)  # now the connection to a drops
        dropped = time.monotonic()
        reader.join(30)
        frames += rest
        assert frames[-1].event == "done", frames[-1]  # not cancelled: a saw b's client
        assert time.monotonic() - dropped > 3 * grace  # it outlived a's grace period
        assert [int(f.id) for f in frames] == list(range(1, len(frames) + 1))


def test_a_turn_whose_process_died_ends_with_turn_lost(emulator, gemini_emulator_session, tmp_path,
                                                        monkeypatch):
    """A real process is killed (SIGKILL) in the middle of a turn: a client resuming on another
    process gets the frames it missed, then `event: error` TURN_LOST once the dead owner's
    check-ins are stale; the session then takes a new message."""
    import reference_server.turns as turns_module

    monkeypatch.setattr(turns_module, "OWNER_STALE_S", 3.0)  # 15 s in production
    url = database_url("sqlite", tmp_path)
    env = {**server_env(gemini_emulator_session.url, url), "WORKSHOP_REPLAY_STORE": "database"}
    emulator.set_pacing(first_token_s=0, chunk_s=0.05)
    (doomed,) = start_processes(1, env)
    try:
        with shared_server(url) as survivor:
            session_id = request("POST", f"{doomed.url}/api/sessions", headers=ALICE).json()["session_id"]
            ctx, it, frames = open_stream(doomed.url, session_id, "Count to 300")
            doomed.process.kill()
            doomed.process.wait(5)
            with contextlib.suppress(httpx.HTTPError):
                ctx.__exit__(None, None, None)
            busy = request("POST", f"{survivor.url}/api/sessions/{session_id}/messages", headers=ALICE,
                           json={"text": "Hello"})
            assert busy.status_code == 409  # the owner checked in less than OWNER_STALE_S ago
            began = time.monotonic()
            with httpx.Client(timeout=30, headers={**ALICE, "Last-Event-ID": frames[-1].id}) as client:
                with connect_sse(client, "GET", f"{survivor.url}/api/sessions/{session_id}/stream") as source:
                    rest = list(source.iter_sse())
            assert time.monotonic() - began < 8
            assert rest[-1].event == "error"
            assert json.loads(rest[-1].data)["error"]["code"] == "TURN_LOST"
            ids = [int(f.id) for f in frames + rest]
            assert ids == list(range(1, len(ids) + 1))
            assert turn(survivor.url, session_id, "Count to 2")[-1][0] == "done"
    finally:
        doomed.stop()


def test_a_server_process_owns_its_port_before_it_starts():
    """The port is bound by ServerProcess and handed to the child, so no other server can take it
    between "found free" and "bound" (and answer the health check in its place)."""
    from workshop.servers.scaleout import ServerProcess

    server = ServerProcess({})
    try:
        with pytest.raises(OSError), socket.socket() as intruder:
            intruder.bind((server.host, server.port))
    finally:
        server.stop()
    with socket.socket() as later:  # stopped before launch: the port is free again
        later.bind((server.host, server.port))
