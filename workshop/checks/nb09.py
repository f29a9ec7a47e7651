"""Checks for 09_taking_it_to_production."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from httpx_sse import ServerSentEvent

from ._report import fail, passed

TOKEN = "tok-check-09"
PROMPT = "Count to 200"  # enough frames for two cuts, however big the model's chunks are
ANSWER = ", ".join(str(n) for n in range(1, 201)) + "."
TERMINAL = ("done", "error", "cancelled")


class CuttingProxy:
    """A loopback TCP proxy in front of a server that ends connections early, as networks and
    proxies do.

    Connection number ``n`` (0, 1, ...) is ended once ``cuts[n]`` SSE frames have gone from the
    server to the client; connections past ``len(cuts)`` are left alone. A cut is an int
    (abrupt: the socket is closed mid-body, so httpx raises ``RemoteProtocolError``) or
    ``(frames, "clean")``: the body is ended properly after those frames, as a proxy or load
    balancer that times a response out may do, so the client's read loop just ends, with no
    exception and no terminal frame. Either way the server sees its client go away.
    ``endings`` records how each cut connection ended."""

    def __init__(self, upstream: tuple[str, int], cuts: list[int | tuple[int, str]]) -> None:
        self.upstream = upstream
        self.cuts = [(cut, "abrupt") if isinstance(cut, int) else cut for cut in cuts]
        self.connections = 0
        self.cut = 0
        self.endings: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stopped
            number, self.connections = self.connections, self.connections + 1
            cut = self.cuts[number] if number < len(self.cuts) else None
            server = socket.create_connection(self.upstream)
            self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump_response, args=(server, client, cut), daemon=True).start()

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source, target)

    def _pump_response(self, source: socket.socket, target: socket.socket,
                       cut: tuple[int, str] | None) -> None:
        """Forward one response; with a cut, read its chunked body chunk by chunk, count the
        frames, and end it after the allowed ones."""
        try:
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                data = source.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, body = buffer.partition(b"\r\n\r\n")
            if cut is None or b"transfer-encoding: chunked" not in head.lower():
                target.sendall(buffer)
                while data := source.recv(65536):
                    target.sendall(data)
                return
            limit, how = cut
            if how == "clean":  # the client must not reuse a connection the proxy ends
                head += b"\r\nConnection: close"
            target.sendall(head + b"\r\n\r\n")
            frames, last = 0, b""
            while True:
                while b"\r\n" not in body:
                    data = source.recv(65536)
                    if not data:
                        return
                    body += data
                size_line, _, body = body.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    target.sendall(b"0\r\n\r\n")
                    return
                while len(body) < size + 2:
                    data = source.recv(65536)
                    if not data:
                        return
                    body += data
                chunk, body = body[:size], body[size + 2:]
                scan, end = last + chunk, 0  # a frame's "\n\n" may straddle two chunks
                while frames < limit and (found := scan.find(b"\n\n", end)) >= 0:
                    frames, end = frames + 1, found + 2
                last = chunk[-1:]
                if frames < limit:
                    target.sendall(b"%x\r\n%s\r\n" % (size, chunk))
                    continue
                keep = chunk[:end - (len(scan) - len(chunk))]  # up to the end of the last frame
                if keep:
                    target.sendall(b"%x\r\n%s\r\n" % (len(keep), keep))
                self.cut += 1  # counted before the client can see the end (the check reads it then)
                self.endings.append(how)
                if how == "clean":
                    target.sendall(b"0\r\n\r\n")
                return
        except OSError:
            pass
        finally:
            self._close(source, target)

    def stop(self) -> None:
        self._listener.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _describe(frames: list) -> str:
    return ", ".join(f"{getattr(f, 'id', '?')}:{getattr(f, 'event', '?')}" for f in frames[:12]) + (
        " ..." if len(frames) > 12 else "")


def check_resuming_client(read_with_resume: Callable[[str, str, str, str], list[ServerSentEvent]],
                          emulator: Any = None) -> None:
    """Serve the reference server behind connections cut after 3 frames (abruptly: httpx
    raises), then after 4 more (cleanly: the body just ends, no terminal frame), and call
    ``read_with_resume(base_url, token, session_id, text)``. ``emulator``: the
    offline emulator's handle (``backend.emulator``) to count model calls, or None."""
    import httpx

    from reference_server import Settings, create_app

    from ..servers import BackgroundServer

    app = create_app(Settings(tokens={TOKEN: "learner"}, resume_grace_s=10, database_url="memory://"))
    before = len(emulator.requests) if emulator is not None else 0
    with BackgroundServer(app) as server, CuttingProxy((server.host, server.port),
                                                    cuts=[3, (4, "clean")]) as proxy:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            sid = client.post("/api/sessions", headers={"Authorization": f"Bearer {TOKEN}"}).json()["session_id"]
        try:
            frames = read_with_resume(proxy.url, TOKEN, sid, PROMPT)
        except NotImplementedError:
            raise
        except httpx.TransportError as exc:
            fail(f"Your function raised {type(exc).__name__} when the connection was cut after 3 frames.",
                 "Catch httpx.TransportError around the read and reconnect with "
                 "GET /api/sessions/{id}/stream and the header Last-Event-ID.")
        except Exception as exc:  # what a learner's code may raise: explain, don't crash
            fail(f"Your function raised {type(exc).__name__}: {exc}",
                 "Read with httpx_sse.connect_sse; after a cut, GET .../stream with Last-Event-ID.")
        cuts, streams, endings = proxy.cut, proxy.connections, list(proxy.endings)
    model_calls = len(emulator.requests) - before if emulator is not None else None

    if not isinstance(frames, list) or not all(hasattr(f, "id") and hasattr(f, "event") for f in frames):
        fail(f"Expected a list of frames (httpx_sse ServerSentEvent), got {type(frames).__name__}.",
             "Append each frame of source.iter_sse() to a list and return it.")
    if not frames:
        fail("You returned no frames.", "Append every frame you read, across all connections.")
    ids = [f.id for f in frames]
    if frames[-1].event not in TERMINAL and streams == cuts and endings[-1:] == ["clean"]:
        fail(f"Your list ends with frame {ids[-1]} ({frames[-1].event!r}), not with "
             f"done/error/cancelled: connection {streams}'s body ended cleanly, with no exception "
             "and no terminal frame, and you stopped reading.",
             "A body that ends without done, error or cancelled was cut too (a proxy or load "
             "balancer may end a response cleanly): reconnect whenever the read loop ends without "
             "a terminal frame, not only when httpx raises.")
    if frames[-1].event not in TERMINAL:
        fail(f"Your list ends with frame {ids[-1]} ({frames[-1].event!r}), not with done/error/cancelled: "
             f"the connection was cut {cuts} time(s) and you stopped reading.",
             "A stream is complete only when its terminal frame arrives: until then, reconnect.")
    if model_calls is not None and model_calls > 1:
        fail(f"The model was called {model_calls} times: you sent the message again instead of resuming.",
             "Resume with GET /api/sessions/{id}/stream; POST .../messages starts a new turn.")
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1}, key=lambda i: int(i or 0))
        fail(f"Frames {', '.join(map(str, twice[:5]))} appear twice ({_describe(frames)}).",
             "Send the id of the last frame you saw in the Last-Event-ID header: the server then "
             "replays only the frames after it.")
    expected = [str(i) for i in range(1, len(frames) + 1)]
    if ids != expected:
        fail(f"The frame ids are {_describe(frames)}: some are missing or out of order.",
             "Keep every frame, in the order read, across the reconnections.")
    if frames[-1].event != "done":
        fail(f"The turn ended with {frames[-1].event!r}: {frames[-1].data}", "Run the cell again.")
    if streams < 3:
        fail(f"Only {streams} connection(s) were opened; the check cut 2 of them.",
             "Reconnect after every cut, not only the first.")
    if emulator is not None:
        text = "".join(json.loads(f.data)["content"]["parts"][0].get("text", "")
                       for f in frames if f.event in (None, "message") and json.loads(f.data).get("partial"))
        if text != ANSWER:
            fail(f"The text of your frames reads {text[:60]!r}...", "Keep every frame, in order.")
    called = "; the model was called once" if model_calls is not None else ""
    passed(f"{len(frames)} frames, ids 1..{len(frames)}, over {streams} connections ({cuts} cut: "
           f"{', '.join(endings)}), ending with done{called}.")


def check_what_happened(what_happened: Callable[[int, list[ServerSentEvent]], str]) -> None:
    """``what_happened(status, frames)`` on the outcomes a client of the server can see."""
    def frame(id_: int, event: str | None = None, data: str = "{}") -> ServerSentEvent:
        return ServerSentEvent(event=event or "message", data=data, id=str(id_))

    content = [frame(1, data='{"partial": true}'), frame(2, data='{"partial": true}')]
    cases = [
        ("a complete answer", 200, [*content, frame(3, "done", '{"events": 2}')], "done"),
        ("a 503 before the first byte", 503, [], "retry"),
        ("a 429 before the first byte", 429, [], "retry"),
        ("a 502 from a proxy in front of the server", 502, [], "retry"),
        ("a 504 from a proxy that gave up waiting", 504, [], "retry"),
        ("an error frame after two events", 200,
         [*content, frame(3, "error", '{"error": {"code": "STREAM_INTERRUPTED", "message": "..."}}')],
         "error:STREAM_INTERRUPTED"),
        ("a truncated answer", 200,
         [*content, frame(3, "error", '{"error": {"code": "RESPONSE_TRUNCATED", "message": "..."}}')],
         "error:RESPONSE_TRUNCATED"),
        ("a cancelled turn", 200, [*content, frame(3, "cancelled", '{"reason": "cancel_requested"}')],
         "cancelled"),
        ("a body cut before its terminal frame", 200, content, "resume"),
        ("a body cut after a keep-alive ping (httpx-sse yields it as a frame with empty data)",
         200, [*content, frame(2, data="")], "resume"),
        ("an empty 200 body", 200, [], "resume"),
        ("a 409 (a turn is still running)", 409, [], "client_error"),
        ("a 422 (bad body)", 422, [], "client_error"),
        ("a 401 (no valid token)", 401, [], "client_error"),
    ]
    for name, status, frames, expected in cases:
        try:
            got = what_happened(status, list(frames))
        except NotImplementedError:
            raise
        except Exception as exc:
            fail(f"For {name} (status {status}, frames {_describe(frames) or 'none'}) your function "
                 f"raised {type(exc).__name__}: {exc}",
                 "Look at the last frame only when there is one, and parse its data only when it "
                 "is an error frame; no frames at all is a normal case.")
        if got != expected:
            hints = {
                "resume": "No done/error/cancelled frame means the connection broke: resume with "
                          "Last-Event-ID (\"resume\").",
                "retry": "429 and every 5xx (503 from the server, 502 or 504 from a proxy in front "
                         "of it) come before any frame and are not the request's fault: nothing "
                         "was streamed, try again later.",
                "done": "Only `event: done` means success.",
                "cancelled": "`event: cancelled` is its own terminal frame.",
                "client_error": "The other 4xx statuses say the request itself was wrong: "
                                "\"client_error\".",
            }
            hint = hints.get(expected, 'An error frame\'s data is {"error": {"code": ...}}: '
                                       'return "error:" + that code.')
            fail(f"For {name} (status {status}, frames {_describe(frames) or 'none'}) you returned "
                 f"{got!r}, expected {expected!r}.", hint)
    passed(f"All {len(cases)} outcomes classified: done, retry, error:CODE, cancelled, resume, client_error.")


# -- Exercise 9.1: a small turn manager's follow ----------------------------------------------------
FOLLOW_WAIT_S = 5.0  # what a frame that should arrive may take, under load
END_WAIT_S = 5.0  # after the terminal frame is stored, a follower must end within this (load)


class _Follower:
    """One client following the turn with the learner's ``follow``, in a task of its own."""

    def __init__(self, turns: Any, session_id: str, after: int, name: str,
                 leave_after: int | None = None) -> None:
        self.name, self.after, self.leave_after = name, after, leave_after
        self.frames: list = []
        self.error: BaseException | None = None
        self.left = False
        self.task = asyncio.create_task(self._run(turns, session_id))

    async def _run(self, turns: Any, session_id: str) -> None:
        stream = turns.follow(session_id, self.after)
        try:
            if inspect.iscoroutine(stream):  # the stub: an `async def` without a yield
                await stream
                raise TypeError("follow returned a coroutine, not an async generator: yield "
                                "each frame")
            async for frame in stream:
                self.frames.append(frame)
                if self.leave_after is not None and len(self.frames) >= self.leave_after:
                    self.left = True
                    break  # the client goes away (a closed tab)
        except NotImplementedError as exc:
            self.error = exc
        except Exception as exc:  # the learner's code: report it, don't crash the check
            self.error = exc
        finally:
            if hasattr(stream, "aclose"):
                with contextlib.suppress(Exception):
                    await stream.aclose()  # what Starlette does when the client leaves

    @property
    def ids(self) -> list:
        return [getattr(f, "id", f) for f in self.frames]

    @property
    def ended(self) -> bool:
        return bool(self.frames) and getattr(self.frames[-1], "event", None) in TERMINAL

    def stop(self) -> None:
        self.task.cancel()


async def _until(predicate: Callable[[], bool], timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _raise_learner_error(follower: _Follower) -> None:
    if isinstance(follower.error, NotImplementedError):
        raise follower.error
    if follower.error is not None:
        fail(f"follow (the {follower.name}) raised {type(follower.error).__name__}: {follower.error}",
             "Read the session's stored frames after `after`, then wait for new ones.")


def _twice(follower: _Follower) -> None:
    ids = follower.ids
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        fail(f"The {follower.name} got frame(s) {twice[:5]} twice (ids {ids[:14]}).",
             "Where the replay of stored frames meets the live ones, go on from the id of the last "
             "frame you yielded, not from `after`.")


def _in_order(follower: _Follower, first: int, last: int) -> None:
    _twice(follower)
    expected = list(range(first, last + 1))
    if follower.ids != expected:
        fail(f"The {follower.name} got ids {follower.ids[:14]}, expected {expected[:14]}.",
             "Yield every frame with an id above `after`, in order: when several are stored "
             "together, all of them, not only the newest.")


def _recorded_event(text: str) -> Any:
    from google.adk.events import Event
    from google.genai import types

    return Event(author="assistant", partial=True,
                 content=types.Content(role="model", parts=[types.Part(text=text)]))


async def check_mini_turns(turns_class: Callable[[], Any], runner: Any = None,
                           user_id: str = "learner") -> None:
    """Drive ``turns_class()`` (``start(session_id, events)``, ``follow(session_id, after)``)
    with a recorded turn whose events the check releases one by one: followers from 0 before the
    first frame, from the middle while the turn runs, one that leaves early (the turn must go
    on), two at once, and after the end; then, with ``runner``, a real ``run_async`` turn."""
    turns = turns_class()
    feed: asyncio.Queue = asyncio.Queue()
    closed_early = []

    async def recorded():
        finished = False
        try:
            while (text := await feed.get()) is not None:
                yield _recorded_event(text)
            finished = True
        finally:
            if not finished:
                closed_early.append(True)  # the turn's events were closed before their end

    async def nothing():
        return
        yield

    followers: list[_Follower] = []
    sid = "check-turn"
    try:
        if not turns.start(sid, recorded()):
            fail("start refused the session's first turn.", "start returns True when it starts a turn.")
        if turns.start(sid, nothing()):
            fail("start accepted a second turn while the first was running.",
                 "Refuse (return False: the server's 409) while the session's task is not done().")
        first = _Follower(turns, sid, 0, "follower that started at 0 before the first frame")
        followers.append(first)
        await asyncio.sleep(0.05)  # it is waiting before the turn's first frame
        for text in ("1", "2", "3"):
            await feed.put(text)
        await _until(lambda: len(first.frames) >= 3 or first.task.done(), FOLLOW_WAIT_S)
        _raise_learner_error(first)
        if first.task.done():
            fail(f"The {first.name} ended after {len(first.frames)} frame(s), with no terminal frame, "
                 "while the turn was still running.",
                 "After the stored frames, wait for new ones (the session's Condition) until the "
                 "terminal frame arrives: a follower goes live, it does not stop at what is stored.")
        if len(first.frames) < 3:
            fail(f"The {first.name} got {len(first.frames)} of the 3 frames the turn produced "
                 f"within {FOLLOW_WAIT_S:.0f} s.",
                 "Wait for the Condition, then yield every frame stored after the last one you sent "
                 "(several may arrive together: all of them, not only the newest).")
        _in_order(first, 1, 3)

        leaver = _Follower(turns, sid, 0, "follower that started at 0 and left after 2 frames",
                           leave_after=2)
        followers.append(leaver)
        await _until(lambda: leaver.task.done(), FOLLOW_WAIT_S)
        _raise_learner_error(leaver)
        if not leaver.task.done():
            fail(f"A follower that started at 0 while 3 frames were stored got {leaver.ids} within "
                 f"{FOLLOW_WAIT_S:.0f} s.",
                 "Replay first: yield the frames already stored after `after`, then wait for new ones. "
                 "A client that resumes needs what it missed.")
        _in_order(leaver, 1, 2)
        await feed.put("4")
        await _until(lambda: len(first.frames) >= 4 or bool(closed_early), FOLLOW_WAIT_S)
        if closed_early:
            fail("When a follower left, the turn stopped: its events were closed before their end.",
                 "A follower only reads; the turn belongs to its own task. Leaving (the generator "
                 "closed) must not cancel that task: another client may resume the turn.")
        middle = _Follower(turns, sid, 2, "follower that started at 2 while the turn was running")
        followers.append(middle)
        await _until(lambda: len(middle.frames) >= 2 or middle.task.done(), FOLLOW_WAIT_S)
        _raise_learner_error(middle)
        if middle.ids[:1] != [3]:
            fail(f"The {middle.name} got ids {middle.ids} first, not 3 and 4 (stored, after 2).",
                 "Replay the stored frames with an id above `after` before waiting for new ones.")
        for text in ("5", "6"):  # two at once: a follower must send both
            await feed.put(text)
        await feed.put(None)  # the turn ends: start's task stores the terminal frame
        await _until(lambda: first.task.done() and middle.task.done(), FOLLOW_WAIT_S + END_WAIT_S)
        for follower in (first, middle):
            _raise_learner_error(follower)
            _twice(follower)
        if not (first.task.done() and middle.task.done()):
            waiting = first if not first.task.done() else middle
            ids = waiting.ids
            shown = f"{ids}" if len(ids) <= 8 else f"[{ids[0]}, ..., {ids[-1]}] ({len(ids)} frames)"
            fail(f"The {waiting.name} got ids {shown} (the last one terminal: "
                 f"{waiting.ended}) and had not ended {END_WAIT_S + FOLLOW_WAIT_S:.0f} s later.",
                 "Stop (return) after yielding the terminal frame (done or error): nothing follows "
                 "it, and a client waiting for more never closes its stream.")
        total = first.ids[-1] if first.ids else 0
        _in_order(first, 1, total)
        _in_order(middle, 3, total)
        if not first.ended:
            fail(f"The {first.name} ended with {first.frames[-1]!r}, not with the terminal frame.",
                 "Yield the terminal frame too, then stop.")
        if total != 7:
            fail(f"Six events and the end make 7 frames; the {first.name} got {total}.",
                 "Yield every stored frame, once.")

        after_end = [_Follower(turns, sid, after, f"follower that started at {after} after the end")
                     for after in (0, 4)]
        followers += after_end
        await _until(lambda: all(f.task.done() for f in after_end), END_WAIT_S)
        for follower, start in zip(after_end, (1, 5), strict=True):
            _raise_learner_error(follower)
            if not follower.task.done():
                fail(f"The {follower.name} got ids {follower.ids} and never ended.",
                     "A turn that has ended has its terminal frame stored: replay up to it and return.")
            _in_order(follower, start, 7)
    finally:
        for follower in followers:
            follower.stop()
        await feed.put(None)

    real = ""
    if runner is not None:
        from google.adk.agents.run_config import RunConfig, StreamingMode
        from google.genai import types

        session = await runner.session_service.create_session(app_name=runner.app_name, user_id=user_id)
        events = runner.run_async(
            user_id=user_id, session_id=session.id,
            new_message=types.Content(role="user", parts=[types.Part(text="Count to 10")]),
            run_config=RunConfig(streaming_mode=StreamingMode.SSE))
        turns = turns_class()
        turns.start(session.id, events)
        pair = [_Follower(turns, session.id, 0, "follower of a real run_async turn"),
                _Follower(turns, session.id, 0, "second follower of a real run_async turn")]
        try:
            await _until(lambda: all(f.task.done() for f in pair), 30)
        finally:
            for follower in pair:
                follower.stop()
        for follower in pair:
            _raise_learner_error(follower)
            if not follower.ended:
                fail(f"The {follower.name} got ids {follower.ids[-5:]} without a terminal frame.",
                     "Follow to the terminal frame, then return.")
            _in_order(follower, 1, pair[0].ids[-1])
        real = (f"; a real run_async turn: {len(pair[0].frames)} frames to both followers, "
                f"ending with {pair[0].frames[-1].event}")
    passed("Followers from 0 (live), from 2 mid-turn (replay, then live), after the end, two at once: "
           "every frame once, in order, to the terminal frame; a follower that left did not stop "
           f"the turn; a second start was refused{real}.")
