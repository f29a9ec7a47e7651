"""A small HTTP/1.1 server (asyncio + h11) that answers like the Gemini API.

Why not uvicorn: the emulator must control the bytes exactly (CRLF framing, a connection
dropped mid-body for the "stream cut" fault) and notice a client that goes away while it
waits between chunks, so the reliability lessons can show the upstream request closing.

Routes:
    POST /{version}/models/{model}:streamGenerateContent?alt=sse   Gemini API, streamed (SSE)
    POST /{version}/models/{model}:streamGenerateContent           streamed as one JSON array
    POST /{version}/models/{model}:generateContent                 Gemini API, whole answer
    POST /{version}/models/{model}:countTokens                     {"totalTokens": N, ...}
    GET  /{version}/models[/{model}]                               the current models
    POST /v1beta1/[projects/P/locations/L/]publishers/google/models/{model}:...   Vertex AI
    GET  /emulator/stats      counters and the last requests (JSON)
    POST /emulator/faults     {"fault": SPEC, "count": 1} arms a fault for the next requests
    POST /emulator/script     {"text": ..., "thoughts": [...], "function_call": {...}} queues a reply
    POST /emulator/reset      forget armed faults, scripted replies and the request log
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import http
import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

from . import models, wire
from .faults import STATUS, Fault, FaultSpecError, api_key_invalid_body, error_body
from .rules import Reply, hidden_thinking_tokens, plan_reply, wants_streamed_arguments

ROUTE_RE = re.compile(
    r"^/(?P<version>v1\w*)/(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/)?"
    r"models/(?P<model>[^:/]+):(?P<method>streamGenerateContent|generateContent|countTokens)$"
)
MODELS_RE = re.compile(r"^/(?P<version>v1\w*)/models(?:/(?P<model>[^:/]+))?$")
MAX_LOG = 500


@dataclass
class Pacing:
    """How fast the emulated model talks. Zero for tests and benchmarks."""

    first_token_s: float = 0.3
    chunk_s: float = 0.03
    words_per_chunk: int = 0  # > 0: that many words a chunk; 0: the real API's sizes
    chunk_chars: int = wire.CHUNK_CHARS  # characters a chunk when words_per_chunk is 0


@dataclass
class RequestRecord:
    """What the emulator saw and did for one model request (for tests and lessons)."""

    number: int
    path: str
    model: str
    stream: bool
    body: dict[str, Any] | None
    headers: dict[str, str]
    status: int = 200
    chunks_sent: int = 0
    sent_at: list[float] = field(default_factory=list)  # time.time() of each chunk
    started_at: float = 0.0
    ended_at: float | None = None
    outcome: str = "running"  # completed | client_closed | cut | error | running


class EmulatorState:
    """Everything the server remembers: pacing, armed faults, scripted replies, the log."""

    def __init__(self, pacing: Pacing | None = None) -> None:
        self.pacing = pacing or Pacing()
        self.armed: list[Fault] = []
        self.scripted: collections.deque[Reply] = collections.deque()
        self.log: collections.deque[RequestRecord] = collections.deque(maxlen=MAX_LOG)
        self.counter = 0
        self.fault_hits: collections.Counter[str] = collections.Counter()

    def stats(self) -> dict[str, Any]:
        outcomes = collections.Counter(r.outcome for r in self.log)
        return {
            "requests": self.counter,
            "outcomes": dict(outcomes),
            "pacing": asdict(self.pacing),
            "armed_faults": [f.spec for f in self.armed],
            "scripted_replies": len(self.scripted),
        }

    def reset(self) -> None:
        self.armed.clear()
        self.scripted.clear()
        self.log.clear()
        self.fault_hits.clear()


class _Disconnect(Exception):
    pass


class Connection:
    """One client connection: h11 state, and a watcher that notices the client leaving."""

    def __init__(self, state: EmulatorState, reader, writer) -> None:
        self.state = state
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER)
        self.gone = asyncio.Event()

    async def _next_event(self):
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(65536)
            self.h11.receive_data(data)

    async def _send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def serve(self) -> None:
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, h11.Request):
                    body = bytearray()
                    while True:
                        more = await self._next_event()
                        if isinstance(more, h11.Data):
                            body += more.data
                        elif isinstance(more, h11.EndOfMessage):
                            break
                    keep_open = await self._dispatch(event, bytes(body))
                    if not keep_open or self.h11.our_state is not h11.DONE:
                        break
                    self.h11.start_next_cycle()
                else:  # ConnectionClosed or anything else ends the connection
                    break
        except (h11.RemoteProtocolError, ConnectionError, _Disconnect):
            pass
        finally:
            with contextlib.suppress(Exception):
                self.writer.close()

    async def _respond(self, status: int, payload: bytes, content_type: str) -> bool:
        headers = [("content-type", content_type), ("content-length", str(len(payload)))]
        await self._send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        await self._send(h11.Data(data=payload))
        await self._send(h11.EndOfMessage())
        return True

    async def _json(self, status: int, obj: Any) -> bool:
        return await self._respond(status, wire.pretty(obj), "application/json; charset=UTF-8")

    async def _dispatch(self, request: h11.Request, body: bytes) -> bool:
        target = request.target.decode()
        url = urlsplit(target)
        method = request.method.decode()
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        if url.path.startswith("/emulator/"):
            return await self._control(method, url.path, body)
        listing = MODELS_RE.match(url.path)
        if method == "GET" and listing:
            return await self._models(listing)
        match = ROUTE_RE.match(url.path)
        if method != "POST" or not match:
            return await self._json(404, error_body(404, f"Method not found: {method} {url.path}"))
        return await self._generate(match, url, headers, body)

    async def _control(self, method: str, path: str, body: bytes) -> bool:
        try:
            data = json.loads(body) if body else {}
            if method == "GET" and path == "/emulator/stats":
                return await self._json(200, self.state.stats())
            if method == "POST" and path == "/emulator/faults":
                fault = Fault.parse(data["fault"])
                self.state.armed.extend([fault] * int(data.get("count", 1)))
                return await self._json(200, self.state.stats())
            if method == "POST" and path == "/emulator/script":
                self.state.scripted.append(Reply.from_dict(data))
                return await self._json(200, self.state.stats())
            if method == "POST" and path == "/emulator/reset":
                self.state.reset()
                return await self._json(200, self.state.stats())
        except (ValueError, KeyError, TypeError, FaultSpecError) as exc:
            return await self._json(400, error_body(400, f"Bad control request: {exc}"))
        return await self._json(404, error_body(404, f"No control endpoint {method} {path}"))

    async def _models(self, match: re.Match) -> bool:
        listing = models.model_list()
        name = match.group("model")
        if name is None:
            return await self._json(200, listing)
        found = next((m for m in listing["models"] if m["name"] == f"models/{name}"), None)
        if found is None:
            return await self._json(404, error_body(404, f"models/{name} is not found for API "
                                                         f"version {match.group('version')}"))
        return await self._json(200, found)

    def _choose_fault(self, headers: dict[str, str], reply: Reply) -> Fault | None:
        if "x-emulator-fault" in headers:
            return Fault.parse(headers["x-emulator-fault"])
        if self.state.armed:
            return self.state.armed.pop(0)
        return reply.fault

    async def _generate(self, match: re.Match, url, headers: dict[str, str], body: bytes) -> bool:
        state = self.state
        state.counter += 1
        model, method = match.group("model"), match.group("method")
        stream = method == "streamGenerateContent"
        record = RequestRecord(
            number=state.counter, path=url.path, model=model, stream=stream, body=None,
            headers={k: v for k, v in headers.items() if k not in ("x-goog-api-key", "authorization")},
            started_at=time.time(),
        )
        state.log.append(record)

        async def fail(status: int, message: str | None = None) -> bool:
            record.status, record.outcome, record.ended_at = status, "error", time.time()
            return await self._json(status, error_body(status, message, model=model))

        key = headers.get("x-goog-api-key") or (parse_qs(url.query).get("key") or [""])[0]
        if not (key or headers.get("authorization")):
            return await fail(403)
        if key.startswith("invalid"):  # the documented way to see a refused key
            record.status, record.outcome, record.ended_at = 400, "error", time.time()
            return await self._json(400, api_key_invalid_body())
        try:
            request = json.loads(body.decode("utf-8"))
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError):
            return await fail(400, "Invalid JSON payload received. Unexpected token.")
        record.body = request
        if not request.get("contents"):
            return await fail(400, "* GenerateContentRequest.contents: contents is not specified\n")
        if not models.is_known(model):
            return await fail(404, models.not_found_message(model, match.group("version")))
        if method == "countTokens":
            record.outcome, record.ended_at = "completed", time.time()
            tokens = wire.prompt_tokens(request)
            return await self._json(200, {"totalTokens": tokens, "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": tokens}]})

        try:
            reply = state.scripted.popleft() if state.scripted else plan_reply(request)
            fault = self._choose_fault(headers, reply)
        except FaultSpecError as exc:
            return await fail(400, str(exc))
        reply.fault = fault
        if fault and fault.finish_reason:
            reply.finish_reason = fault.finish_reason
        if not reply.thoughts and not reply.thinking_tokens and models.thinks(model, request):
            reply.thinking_tokens = hidden_thinking_tokens(request, reply.function_call)
        if fault and fault.status:
            key = f"{fault.spec}|{hashlib.sha1(body).hexdigest()}"
            state.fault_hits[key] += 1
            if fault.times is None or state.fault_hits[key] <= fault.times:
                return await fail(fault.status)

        response_id = hashlib.sha1(f"{state.counter}|{body[:256]!r}".encode()).hexdigest()[:22]
        prompt = wire.prompt_tokens(request)
        chunks = wire.stream_chunks(
            reply, model=model, response_id=response_id, prompt=prompt, request=request,
            words_per_chunk=state.pacing.words_per_chunk, chunk_chars=state.pacing.chunk_chars,
            stream_arguments=stream and "/publishers/" in url.path and wants_streamed_arguments(request),
        )
        if not stream:
            # A whole answer leaves the model only once all of it is generated: as long as
            # streaming every chunk would take.
            await self._pause(self._first_delay(fault) + state.pacing.chunk_s * (len(chunks) - 1))
            record.outcome, record.ended_at = "completed", time.time()
            record.chunks_sent, record.sent_at = 1, [time.time()]
            return await self._json(200, wire.whole_response(chunks))
        sse = parse_qs(url.query).get("alt") == ["sse"]
        return await self._stream(record, chunks, fault, sse=sse)

    def _first_delay(self, fault: Fault | None) -> float:
        if fault and fault.first_token_delay is not None:
            return fault.first_token_delay
        return self.state.pacing.first_token_s

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once (and stop) if the client goes away meanwhile."""
        if seconds <= 0:
            if self.gone.is_set():
                raise _Disconnect
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), timeout=seconds)
        if self.gone.is_set():
            raise _Disconnect

    async def _watch(self) -> None:
        data = await self.reader.read(65536)
        if data:  # a pipelined next request: hand it to h11 for later
            self.h11.receive_data(data)
        else:
            self.gone.set()

    async def _stream(self, record: RequestRecord, chunks: list[dict], fault: Fault | None,
                      sse: bool = True) -> bool:
        """Send chunks paced; without ``?alt=sse`` they form one JSON array, as the real
        API streams it (pretty objects separated by ``,\r\n``)."""
        headers = [
            ("content-type", "text/event-stream" if sse else "application/json; charset=UTF-8"),
            ("content-disposition", "attachment"),
            ("transfer-encoding", "chunked"),
            ("x-content-type-options", "nosniff"),
        ]
        await self._send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
        watcher = asyncio.create_task(self._watch())
        try:
            for i, body in enumerate(chunks):
                await self._pause(self._first_delay(fault) if i == 0 else self.state.pacing.chunk_s)
                if fault and fault.cut_after is not None and i >= fault.cut_after:
                    record.outcome = "cut"
                    self.writer.transport.abort()  # no end of body: the client sees a broken stream
                    return False
                if fault and fault.error_after is not None and i >= fault.error_after:
                    # After the first byte an error travels inside the 200, as the real API
                    # sends it: pretty-printed JSON over several lines, no "data: " prefix.
                    error = wire.pretty(error_body(fault.error_status, model=record.model))
                    await self._send(h11.Data(data=error if sse else b"[" * (i == 0) + error))
                    record.outcome = "error"
                    break
                if sse:
                    data = wire.sse_frame(body)
                else:
                    data = (b"[" if i == 0 else b",\r\n") + wire.pretty(body).rstrip(b"\n")
                await self._send(h11.Data(data=data))
                record.chunks_sent += 1
                record.sent_at.append(time.time())
            else:
                record.outcome = "completed"
                if not sse:
                    await self._send(h11.Data(data=b"]" if chunks else b"[]"))
            await self._send(h11.EndOfMessage())
            return True
        except (_Disconnect, ConnectionError):
            record.outcome = "client_closed"
            return False
        finally:
            record.ended_at = time.time()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher


def _reason(status: int) -> bytes:
    """The status line's reason phrase ("HTTP/1.1 429 Too Many Requests")."""
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


async def serve(state: EmulatorState, host: str, port: int) -> asyncio.Server:
    """Start listening; the caller owns the returned server."""
    tasks: set[asyncio.Task] = set()

    async def on_client(reader, writer) -> None:
        task = asyncio.current_task()
        tasks.add(task)
        try:
            await Connection(state, reader, writer).serve()
        except asyncio.CancelledError:
            pass  # shutting down; a cancelled task here makes asyncio's streams log noise
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(on_client, host, port, reuse_address=True)
    server.connection_tasks = tasks  # type: ignore[attr-defined]
    return server


__all__ = ["STATUS", "EmulatorState", "Pacing", "RequestRecord", "serve"]
