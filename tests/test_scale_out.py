"""Scale-out: reference-server workers (``python -m reference_server``) behind the real nginx
(``deploy/nginx.conf.template``, as ``make serve-prod`` runs it: ``workshop/stack.py``), sharing
nothing but the database, SQLite (WAL) or PostgreSQL, and, in the ``redis`` stack, Redis for the
live streams and the turn state. nginx balances requests round-robin, so
consecutive requests of one conversation reach both workers; its access log names the worker of
each request. With the replay buffer and the turn state in the database
(``WORKSHOP_REPLAY_STORE=database``, the stack's default) the 409, ``/cancel``, resumes and the
grace period work from either worker; with the default in-memory buffer a resume that reaches
the other worker gets a clear JSON 404 at once (see notebook 12). Without nginx these tests skip,
except in CI (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid

import httpx
import pytest
from httpx_sse import connect_sse

from reference_server import Settings, create_app
from reference_server.persistence import session_service_from_url
from workshop.servers import BackgroundServer
from workshop.servers.nginx import Nginx
from workshop.servers.scaleout import start_processes
from workshop.testing import postgres_url, require_nginx

TOKENS = "tok-alice:alice,tok-bob:bob"
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
GRACE_S = 3.0  # the workers' resume grace period: short, so that outliving it takes seconds


def server_env(emulator_url: str, database_url: str) -> dict[str, str | None]:
    return {"DATABASE_URL": database_url, "WORKSHOP_TOKENS": TOKENS, "WORKSHOP_REPLAY_STORE": "database",
            "GOOGLE_GEMINI_BASE_URL": emulator_url, "GOOGLE_API_KEY": "test-key",
            "WORKSHOP_RESUME_GRACE_S": str(GRACE_S), "GEMINI_API_KEY": None,
            "GOOGLE_GENAI_USE_VERTEXAI": None}


def database_url(database: str, tmp_path) -> str:
    return postgres_url() if database == "postgresql" else f"sqlite:///{tmp_path / 'sessions.db'}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "redis"])
def stack(request, gemini_emulator_session, tmp_path_factory):
    """nginx and two workers, started once per store for the module (workers take seconds to
    import); each test uses the ``emulator`` fixture, which resets the same emulator. ``sqlite``
    and ``postgresql``: sessions, live streams and turn state in that database; ``redis``:
    sessions in SQLite, live streams and turn state in Redis (``REDIS_URL``)."""
    from workshop.stack import Stack

    require_nginx()
    tmp = tmp_path_factory.mktemp("stack")
    env = server_env(gemini_emulator_session.url, database_url(request.param, tmp))
    if request.param == "redis":
        env.update(REDIS_URL=request.getfixturevalue("redis_url"), WORKSHOP_REPLAY_STORE="redis",
                   WORKSHOP_REDIS_PREFIX=f"scale-out-{uuid.uuid4().hex[:8]}:")
    with Stack(port=0, workers=2, env=env) as running:
        yield running


# -- where nginx sent each request: its access log -------------------------------------------
def logged(proxy: Nginx, path_part: str, count: int = 1) -> list[tuple[str, int, str]]:
    """``(method, status, worker)`` of the requests whose path contains ``path_part``
    (``Nginx.logged``: once ``count`` are logged)."""
    return [(r.method, r.status, r.worker) for r in proxy.logged(path_part, count)]


def address(worker) -> str:
    return f"{worker.host}:{worker.port}"


def steer(proxy: Nginx, worker) -> str:
    """Make ``worker`` the one nginx sends the next request to: nginx (one process) hands
    requests to its two upstreams in turn, so probe ``/healthz`` until a probe lands on the
    other one. Returns the worker's ``host:port``, to check against the log afterwards."""
    wanted = address(worker)
    for _ in range(3):
        probe = uuid.uuid4().hex
        assert httpx.get(f"{proxy.url}/healthz?probe={probe}", timeout=10).status_code == 200
        if logged(proxy, probe)[0][2] != wanted:
            return wanted
    raise AssertionError(f"nginx sent three probes in a row to {wanted}")


def other(stack, worker_address: str) -> str:
    (rest,) = {address(w) for w in stack.workers} - {worker_address}
    return rest


# -- conversations and turns, through nginx --------------------------------------------------
def new_session(client: httpx.Client) -> str:
    created = client.post("/api/sessions", headers=ALICE)
    assert created.status_code == 201, created.text
    return created.json()["session_id"]


def turn(client: httpx.Client, session_id: str, text: str) -> list:
    with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages", json={"text": text},
                     headers=ALICE) as source:
        assert source.response.status_code == 200, source.response.read()
        return list(source.iter_sse())


def final_text(frames) -> str:
    events = [json.loads(f.data) for f in frames if f.event == "message"]
    return "".join(p.get("text", "") for e in events if not e.get("partial")
                   for p in e.get("content", {}).get("parts", []))


def streamed_text(frames) -> str:
    events = [json.loads(f.data) for f in frames if f.event == "message"]
    return "".join(p.get("text", "") for e in events if e.get("partial")
                   for p in e.get("content", {}).get("parts", []))


def wait_for_outcome(model_request, timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while model_request.outcome == "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    return model_request.outcome


def test_a_conversation_moves_between_workers(stack, emulator):
    texts = ["What is 2 + 3?", "Count to 3", "What is the capital of France?"]
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        session_id = new_session(client)
        turns = [turn(client, session_id, text) for text in texts]
        assert [t[-1].event for t in turns] == ["done"] * 3
        # Ownership is in the database too: Bob gets 404 from both workers.
        for _ in stack.workers:
            bob = client.post(f"/api/sessions/{session_id}/messages", headers=BOB, json={"text": "Hello"})
            assert bob.status_code == 404 and bob.json()["error"]["code"] == "SESSION_NOT_FOUND"
    requests = logged(stack.nginx, f"{session_id}/messages", 5)
    alice = [worker for _, status, worker in requests if status == 200]
    assert len(alice) == 3 and len(set(alice)) == 2, requests  # round robin: both ran its turns
    assert {worker for _, status, worker in requests if status == 404} == {address(w) for w in stack.workers}
    # Every turn's model request held the whole conversation, read from the shared database.
    contents = emulator.requests[-1].body["contents"]
    assert ["".join(p.get("text", "") for p in c["parts"]) for c in contents] == [
        texts[0], final_text(turns[0]), texts[1], final_text(turns[1]), texts[2]]
    assert [len(r.body["contents"]) for r in emulator.requests[-3:]] == [1, 3, 5]


def test_409_and_cancel_reach_a_turn_running_on_another_worker(stack, emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.05)
    words = 300  # 15 s of answer at the least: a cancel that ends it has reached it
    with httpx.Client(base_url=stack.url, timeout=30, headers=ALICE) as client:
        session_id = new_session(client)
        owner = steer(stack.nginx, stack.workers[0])
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                         json={"text": f"Count to {words}"}) as source:
            events = source.iter_sse()
            frames = [next(events)]  # the turn runs on the owner
            # Round robin: the first second message reaches the other worker, the next one the owner.
            for _ in range(2):
                busy = client.post(f"/api/sessions/{session_id}/messages", json={"text": "Hello"})
                assert busy.status_code == 409 and busy.json()["error"]["code"] == "TURN_IN_PROGRESS"
            began = time.monotonic()
            cancelled = client.post(f"/api/sessions/{session_id}/cancel")  # the other worker
            took = time.monotonic() - began
            assert cancelled.json() == {"cancelled": True}
            frames += list(events)
        assert frames[-1].event == "cancelled" and json.loads(frames[-1].data) == {"reason": "cancel_requested"}
        assert took < words * 0.05 / 2, f"a cancel through the other worker took {took:.2f} s"
        assert wait_for_outcome(emulator.requests[-1]) == "client_closed"  # the owner closed the model's request
        again = client.post(f"/api/sessions/{session_id}/cancel")
        assert again.json() == {"cancelled": False}
        assert turn(client, session_id, "Count to 2")[-1].event == "done"  # the session works again
    messages = logged(stack.nginx, f"{session_id}/messages", 4)
    cancels = logged(stack.nginx, f"{session_id}/cancel", 2)
    assert [w for _, status, w in messages if status == 200][0] == owner, messages  # the cancelled turn
    assert {w for _, status, w in messages if status == 409} == {owner, other(stack, owner)}, messages
    assert cancels[0][2] == other(stack, owner), cancels


def test_a_resume_on_another_worker_gets_every_missed_frame_once(stack, emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    with httpx.Client(base_url=stack.url, timeout=30, headers=ALICE) as client:
        session_id = new_session(client)
        owner = steer(stack.nginx, stack.workers[0])
        seen = []
        with connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                         json={"text": "Count to 60"}) as source:
            for sse in source.iter_sse():
                seen.append(sse)
                if len(seen) == 5:
                    break  # the connection drops
        with connect_sse(client, "GET", f"/api/sessions/{session_id}/stream",
                         headers={"Last-Event-ID": seen[-1].id}) as source:  # the other worker
            assert source.response.status_code == 200, source.response.read()
            seen += list(source.iter_sse())
        assert [int(f.id) for f in seen] == list(range(1, len(seen) + 1))  # nothing lost or repeated
        assert seen[-1].event == "done" and json.loads(seen[-1].data)["events"] == len(seen) - 1
        assert streamed_text(seen) == final_text(seen)
        assert len(emulator.requests) == 1 and emulator.requests[0].outcome == "completed"  # no second call
        # The tail stays resumable from either worker after the end.
        for _ in stack.workers:
            tail = client.get(f"/api/sessions/{session_id}/stream", headers={"Last-Event-ID": str(len(seen) - 1)})
            assert tail.status_code == 200 and tail.text.count("event: done") == 1
    (posted,) = logged(stack.nginx, f"{session_id}/messages")
    resumes = [w for _, _, w in logged(stack.nginx, f"{session_id}/stream", 3)]
    assert posted[2] == owner and resumes[0] == other(stack, owner), (posted, resumes)
    assert set(resumes[1:]) == {owner, other(stack, owner)}


def test_a_client_following_from_another_worker_keeps_the_turn_alive(stack, emulator):
    """The client moves to the other worker (resumes there), then its connection to the owner
    drops: the owner's grace period ends, yet it keeps the turn running because the other
    worker says a client follows it."""
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    with httpx.Client(base_url=stack.url, timeout=30, headers=ALICE) as client:
        session_id = new_session(client)
        owner = steer(stack.nginx, stack.workers[0])
        ctx = connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                          json={"text": "Count to 500"})  # 10 s of answer at the least
        source = ctx.__enter__()
        try:
            events = source.iter_sse()
            frames = [next(events) for _ in range(3)]
            rest: list = []
            following = threading.Event()

            def follow_elsewhere() -> None:
                with connect_sse(client, "GET", f"/api/sessions/{session_id}/stream",
                                 headers={"Last-Event-ID": frames[-1].id}) as resumed:
                    for sse in resumed.iter_sse():
                        rest.append(sse)
                        following.set()

            reader = threading.Thread(target=follow_elsewhere)
            reader.start()
            assert following.wait(10)
        finally:
            ctx.__exit__(None, None, None)  # now the connection to the owner drops
        dropped = time.monotonic()
        reader.join(60)
        frames += rest
        assert frames[-1].event == "done", frames[-1]  # not cancelled: the owner saw the other's client
        assert time.monotonic() - dropped > 2 * GRACE_S  # it outlived the owner's grace period
        assert [int(f.id) for f in frames] == list(range(1, len(frames) + 1))
    (posted,) = logged(stack.nginx, f"{session_id}/messages")
    (resumed,) = logged(stack.nginx, f"{session_id}/stream")
    assert posted[2] == owner and resumed[2] == other(stack, owner), (posted, resumed)


def test_with_the_default_store_a_resume_on_the_other_worker_is_a_clear_404(emulator, gemini_emulator_session,
                                                                             tmp_path):
    """By default the replay buffer is in the memory of the worker that ran the turn. A resume
    that nginx sends to the other worker (same database) is answered at once with JSON, no hang;
    on the worker that ran the turn it replays the frames."""
    from workshop.stack import Stack

    require_nginx()
    env = {**server_env(gemini_emulator_session.url, database_url("sqlite", tmp_path)),
           "WORKSHOP_REPLAY_STORE": "memory"}
    with Stack(port=0, workers=2, env=env) as stack, httpx.Client(base_url=stack.url, timeout=30,
                                                                  headers=ALICE) as client:
        session_id = new_session(client)
        owner = steer(stack.nginx, stack.workers[0])
        assert turn(client, session_id, "Count to 3")[-1].event == "done"
        began = time.monotonic()
        elsewhere = client.get(f"/api/sessions/{session_id}/stream", headers={"Last-Event-ID": "1"})
        assert time.monotonic() - began < 5
        assert elsewhere.status_code == 404, elsewhere.text
        assert elsewhere.headers["content-type"].startswith("application/json")
        assert elsewhere.json()["error"]["code"] == "NO_TURN_TO_RESUME"
        here = client.get(f"/api/sessions/{session_id}/stream", headers={"Last-Event-ID": "1"})
        assert here.status_code == 200 and "event: done" in here.text
        resumes = [w for _, _, w in logged(stack.nginx, f"{session_id}/stream", 2)]
        assert logged(stack.nginx, f"{session_id}/messages")[0][2] == owner
        assert resumes == [other(stack, owner), owner]


def shared_server(url: str, **settings) -> BackgroundServer:
    """A reference server in this process on the shared database, sessions and replay buffer:
    it shares nothing in memory with the workers (as another process), but this test can set
    its module constants."""
    from reference_server.persistence import DatabaseReplayStore

    return BackgroundServer(create_app(Settings(
        tokens={"tok-alice": "alice"}, session_service=session_service_from_url(url),
        replay_store=DatabaseReplayStore(url), **settings)))


def test_a_turn_whose_worker_died_ends_with_turn_lost(emulator, gemini_emulator_session, tmp_path,
                                                       monkeypatch):
    """A real worker process is killed (SIGKILL) in the middle of a turn: nginx sends the
    client's resume to the survivor, which replays the frames the client missed, then ends the
    stream with `event: error` TURN_LOST once the dead owner's check-ins are stale; the session
    then takes a new message. (The survivor runs in this process, to shorten OWNER_STALE_S.)"""
    import reference_server.turns as turns_module

    require_nginx()
    stale_s = 6.0  # 15 s in production; the 409 below must come sooner, on a loaded machine too
    monkeypatch.setattr(turns_module, "OWNER_STALE_S", stale_s)
    url = database_url("sqlite", tmp_path)
    emulator.set_pacing(first_token_s=0, chunk_s=0.05)
    (doomed,) = start_processes(1, server_env(gemini_emulator_session.url, url))
    try:
        with shared_server(url) as survivor, Nginx([doomed.address, (survivor.host, survivor.port)]) as proxy, \
                httpx.Client(base_url=proxy.url, timeout=30, headers=ALICE) as client:
            session_id = new_session(client)
            owner = steer(proxy, doomed)
            ctx = connect_sse(client, "POST", f"/api/sessions/{session_id}/messages",
                              json={"text": "Count to 300"})
            events = ctx.__enter__().iter_sse()
            frames = [next(events) for _ in range(3)]
            doomed.process.kill()
            doomed.process.wait(5)
            with contextlib.suppress(httpx.HTTPError):
                ctx.__exit__(None, None, None)
            # nginx cannot connect to the dead worker: it passes each request to the survivor.
            busy = client.post(f"/api/sessions/{session_id}/messages", json={"text": "Hello"})
            assert busy.status_code == 409, busy.text  # the owner checked in less than OWNER_STALE_S ago
            began = time.monotonic()
            with connect_sse(client, "GET", f"/api/sessions/{session_id}/stream",
                             headers={"Last-Event-ID": frames[-1].id}) as source:
                rest = list(source.iter_sse())
            assert time.monotonic() - began < 3 * stale_s  # sealed once stale, not left hanging
            assert rest[-1].event == "error" and json.loads(rest[-1].data)["error"]["code"] == "TURN_LOST"
            ids = [int(f.id) for f in frames + rest]
            assert ids == list(range(1, len(ids) + 1))
            assert turn(client, session_id, "Count to 2")[-1].event == "done"
            messages = logged(proxy, f"{session_id}/messages", 3)
            assert messages[0][2] == owner, messages  # the turn ran on the dead worker
            assert {w for _, _, w in messages[1:]} == {address(survivor)}, messages
            assert logged(proxy, f"{session_id}/stream")[0][2] == address(survivor)
    finally:
        doomed.stop()


# -- the replay buffer in the shared database (DatabaseReplayStore), and the harness ---------
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
    await asyncio.wait_for(waiter, 4)  # woken by polling the table, before its own 5 s
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
