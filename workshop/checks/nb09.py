"""Checks for 09_taking_it_to_production."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from httpx_sse import ServerSentEvent

from ._report import fail, passed

TOKEN = "tok-check-09"
PROMPT = "Count to 12"
TERMINAL = ("done", "error", "cancelled")


class CuttingProxy:
    """A loopback TCP proxy in front of a server that drops connections, as a network does.

    Connection number ``n`` (0, 1, ...) is closed abruptly once ``cuts[n]`` SSE frames
    (``\\n\\n``) have gone from the server to the client; connections past ``len(cuts)`` are
    left alone. The client sees its body end without the end of the chunked encoding
    (httpx raises ``RemoteProtocolError``); the server sees its client go away."""

    def __init__(self, upstream: tuple[str, int], cuts: list[int]) -> None:
        self.upstream = upstream
        self.cuts = list(cuts)
        self.connections = 0
        self.cut = 0
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
            limit = self.cuts[number] if number < len(self.cuts) else None
            server = socket.create_connection(self.upstream)
            self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, limit), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, limit: int | None) -> None:
        frames = 0
        try:
            while data := source.recv(65536):
                if limit is not None:
                    end = 0
                    while frames < limit and (found := data.find(b"\n\n", end)) >= 0:
                        frames, end = frames + 1, found + 2
                    if frames >= limit:  # send up to the end of the last allowed frame, then cut
                        target.sendall(data[:end])
                        self.cut += 1
                        break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

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
    """Serve the reference server behind connections cut after 3 frames, then after 4 more,
    and call ``read_with_resume(base_url, token, session_id, text)``. ``emulator``: the
    offline emulator's handle (``backend.emulator``) to count model calls, or None."""
    import httpx

    from reference_server import Settings, create_app

    from ..servers import BackgroundServer

    app = create_app(Settings(tokens={TOKEN: "learner"}, resume_grace_s=10, database_url="memory://"))
    before = len(emulator.requests) if emulator is not None else 0
    with BackgroundServer(app) as server, CuttingProxy((server.host, server.port), cuts=[3, 4]) as proxy:
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
        cuts, streams = proxy.cut, proxy.connections
    model_calls = len(emulator.requests) - before if emulator is not None else None

    if not isinstance(frames, list) or not all(hasattr(f, "id") and hasattr(f, "event") for f in frames):
        fail(f"Expected a list of frames (httpx_sse ServerSentEvent), got {type(frames).__name__}.",
             "Append each frame of source.iter_sse() to a list and return it.")
    if not frames:
        fail("You returned no frames.", "Append every frame you read, across all connections.")
    ids = [f.id for f in frames]
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
        if text != ", ".join(str(i) for i in range(1, 13)) + ".":
            fail(f"The text of your frames reads {text!r}.", "Keep every frame, in order.")
    passed(f"{len(frames)} frames, ids 1..{len(frames)}, over {streams} connections ({cuts} cut), "
           f"ending with done; the model was called once.")


def check_what_happened(what_happened: Callable[[int, list[ServerSentEvent]], str]) -> None:
    """``what_happened(status, frames)`` on the outcomes a client of the server can see."""
    def frame(id_: int, event: str | None = None, data: str = "{}") -> ServerSentEvent:
        return ServerSentEvent(event=event or "message", data=data, id=str(id_))

    content = [frame(1, data='{"partial": true}'), frame(2, data='{"partial": true}')]
    cases = [
        ("a complete answer", 200, [*content, frame(3, "done", '{"events": 2}')], "done"),
        ("a 503 before the first byte", 503, [], "retry"),
        ("a 429 before the first byte", 429, [], "retry"),
        ("an error frame after two events", 200,
         [*content, frame(3, "error", '{"error": {"code": "STREAM_INTERRUPTED", "message": "..."}}')],
         "error:STREAM_INTERRUPTED"),
        ("a truncated answer", 200,
         [*content, frame(3, "error", '{"error": {"code": "RESPONSE_TRUNCATED", "message": "..."}}')],
         "error:RESPONSE_TRUNCATED"),
        ("a cancelled turn", 200, [*content, frame(3, "cancelled", '{"reason": "cancel_requested"}')],
         "cancelled"),
        ("a body cut before its terminal frame", 200, content, "resume"),
        ("an empty 200 body", 200, [], "resume"),
        ("a 409 (a turn is still running)", 409, [], "client_error"),
        ("a 422 (bad body)", 422, [], "client_error"),
    ]
    for name, status, frames, expected in cases:
        got = what_happened(status, list(frames))
        if got != expected:
            hints = {
                "resume": "No done/error/cancelled frame means the connection broke: resume with "
                          "Last-Event-ID (\"resume\").",
                "retry": "429 and 503 come before any frame: nothing was streamed, try again later.",
                "done": "Only `event: done` means success.",
                "cancelled": "`event: cancelled` is its own terminal frame.",
                "client_error": "Other 4xx statuses are the client's mistake: \"client_error\".",
            }
            hint = hints.get(expected, 'An error frame\'s data is {"error": {"code": ...}}: '
                                       'return "error:" + that code.')
            fail(f"For {name} (status {status}, frames {_describe(frames) or 'none'}) you returned "
                 f"{got!r}, expected {expected!r}.", hint)
    passed(f"All {len(cases)} outcomes classified: done, retry, error:CODE, cancelled, resume, client_error.")
