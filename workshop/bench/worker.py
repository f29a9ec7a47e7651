"""The benchmark's two kinds of child process: the client and the HTTP servers.

``python -m workshop.bench.worker client``: the client. It streams through any of the four
configurations on command (one JSON line on stdin, one JSON line back on stdout) and reports,
per stream, when it asked and when each event came (``time.time()``, the emulator's clock too).
In the ``raw`` and ``run_async`` configurations this process *is* the application (google-genai,
or ADK in process); in the HTTP ones it is only the client.

``python -m workshop.bench.worker reference|run_sse``: one HTTP server (uvicorn), printing
``PORT <n>`` once it listens.

Both take the emulator's address from the environment (``GOOGLE_GEMINI_BASE_URL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TOKEN, USER = "bench-token", "bench"


def prompt(count_to: int, tag: str) -> str:
    return f"Count to {count_to}. (benchmark stream {tag})"


def write_agents_dir(root: Path) -> Path:
    """The layout ``get_fast_api_app`` loads: ``assistant/agent.py`` with ``root_agent``."""
    agents_dir = root / "agents"
    (agents_dir / "assistant").mkdir(parents=True, exist_ok=True)
    (agents_dir / "assistant" / "__init__.py").write_text("from . import agent\n")
    (agents_dir / "assistant" / "agent.py").write_text(
        "from reference_server import build_agent\n\nroot_agent = build_agent()\n")
    return agents_dir


STORAGE_ENV = "WORKSHOP_BENCH_STORAGE"  # "memory" (default) or "sqlite": sessions, on both sides


def build_app(name: str, tmp: Path) -> Any:
    """The reference server's app, or ADK's built-in one serving the same agent, with sessions
    in memory or in a SQLite file (``WORKSHOP_BENCH_STORAGE``), like for like."""
    sqlite = os.environ.get(STORAGE_ENV, "memory") == "sqlite"
    if name == "reference":
        import importlib

        # WORKSHOP_BENCH_REFERENCE: another package with the same create_app/Settings, to
        # measure a candidate change to the reference server against the current one
        server = importlib.import_module(os.environ.get("WORKSHOP_BENCH_REFERENCE", "reference_server"))
        database_url = f"sqlite:///{tmp}/reference.db" if sqlite else "memory://"
        return server.create_app(server.Settings(tokens={TOKEN: USER}, database_url=database_url))
    from google.adk.cli.fast_api import get_fast_api_app
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\[EXPERIMENTAL\]")
        return get_fast_api_app(agents_dir=str(write_agents_dir(tmp)), web=False,
                                session_service_uri=f"sqlite:///{tmp}/adk.db" if sqlite else "memory://")


class MemoryProbe:
    """ASGI wrapper: ``POST /__bench/memory/{start,sample,stop}`` drives ``tracemalloc`` in this
    server process (for the memory figure); every other request goes to the app untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/__bench/memory/"):
            return await self.app(scope, receive, send)
        body = json.dumps(memory_action(scope["path"].rsplit("/", 1)[-1])).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def memory_action(action: str) -> dict[str, int]:
    """start (and collect garbage), sample or stop tracing; the traced size and the RSS."""
    import gc
    import tracemalloc

    import psutil

    if action == "start":
        tracemalloc.start()
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    if action == "stop":
        tracemalloc.stop()
    return {"traced": traced, "rss": psutil.Process().memory_info().rss}


def serve(name: str) -> None:
    """Serve ``name`` under uvicorn on a free loopback port until killed."""
    import logging

    import uvicorn

    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
        app = MemoryProbe(build_app(name, Path(tmp)))
        # IPPROTO_TCP, not the default 0: asyncio only sets TCP_NODELAY on sockets whose proto
        # says TCP; without it Nagle + delayed ACK hold small SSE frames back about 40 ms.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        config = uvicorn.Config(app, log_config=None, log_level="error", lifespan="on", loop="asyncio",
                                ws="none", timeout_graceful_shutdown=1)
        uvicorn.Server(config).run(sockets=[sock])


@dataclass
class Stream:
    """What one client saw: when it asked, when each event came, which were model chunks."""

    tag: str
    started: float = 0.0
    first_event: float = 0.0
    chunk_times: list[float] = field(default_factory=list)  # receipt of each event carrying a chunk
    events: int = 0  # every ADK event (or raw chunk) received
    ended: float = 0.0  # the stream closed (after its last event, and done frame if any)


class Client:
    """Streams "Count to N" through one of the four configurations."""

    def __init__(self, urls: dict[str, str]) -> None:
        import httpx
        from google import genai
        from google.adk.agents.run_config import RunConfig, StreamingMode
        from google.adk.runners import Runner
        from google.adk.sessions import InMemorySessionService

        from reference_server import build_agent

        from ..backend import model_name

        self.urls = urls
        self.model = model_name()
        self.genai = genai.Client()  # keep a reference: a temporary client is closed mid-call
        self.sessions = InMemorySessionService()
        self.runner = Runner(app_name="bench", agent=build_agent(), session_service=self.sessions)
        self.run_config = RunConfig(streaming_mode=StreamingMode.SSE)
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        self.http = httpx.AsyncClient(timeout=120, limits=limits)

    async def prepare(self, config: str) -> Any:
        """A fresh session for one stream (not timed)."""
        if config == "raw":
            return None
        if config == "run_async":
            return (await self.sessions.create_session(app_name="bench", user_id=USER)).id
        if config == "reference":
            r = await self.http.post(f"{self.urls['reference']}/api/sessions",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
            return r.json()["session_id"]
        r = await self.http.post(f"{self.urls['run_sse']}/apps/assistant/users/{USER}/sessions")
        return r.json()["id"]

    async def stream(self, config: str, session: Any, tag: str, count_to: int,
                     on_first: Any = None) -> Stream:
        s = Stream(tag=tag)
        text = prompt(count_to, tag)

        def got(is_chunk: bool) -> None:
            now = time.time()
            if not s.events:
                s.first_event = now
                if on_first:
                    on_first()
            s.events += 1
            if is_chunk:
                s.chunk_times.append(now)

        s.started = time.time()
        if config == "raw":
            stream = await self.genai.aio.models.generate_content_stream(model=self.model, contents=text)
            async for _chunk in stream:
                got(True)
            s.ended = time.time()
        elif config == "run_async":
            from google.genai import types
            message = types.Content(role="user", parts=[types.Part(text=text)])
            run = self.runner.run_async(user_id=USER, session_id=session, new_message=message,
                                        run_config=self.run_config)
            async with contextlib.aclosing(run) as events:
                async for event in events:
                    got(bool(event.partial))
            s.ended = time.time()
        else:
            from httpx_sse import aconnect_sse
            if config == "reference":
                url = f"{self.urls['reference']}/api/sessions/{session}/messages"
                kwargs: dict[str, Any] = {"json": {"text": text}, "headers": {"Authorization": f"Bearer {TOKEN}"}}
            else:
                url = f"{self.urls['run_sse']}/run_sse"
                kwargs = {"json": {"app_name": "assistant", "user_id": USER, "session_id": session,
                                   "streaming": True, "new_message": {"role": "user", "parts": [{"text": text}]}}}
            async with aconnect_sse(self.http, "POST", url, **kwargs) as source:
                source.response.raise_for_status()
                async for sse in source.aiter_sse():
                    if sse.event == "done":
                        continue
                    if sse.event == "error" or sse.data.startswith('{"error"'):
                        raise RuntimeError(f"{config}: error frame {sse.data}")
                    got('"partial":true' in sse.data)
        s.ended = time.time()
        return s

    async def batch(self, config: str, n: int, count_to: int, prefix: str) -> dict[str, Any]:
        """``n`` concurrent streams; the wall time and this process's CPU time around them."""
        sessions = [await self.prepare(config) for _ in range(n)]
        tags = [f"{prefix}-{config}-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
        cpu0, t0 = time.process_time(), time.perf_counter()
        streams = await asyncio.gather(*(self.stream(config, s, t, count_to) for s, t in zip(sessions, tags, strict=True)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return {"streams": [asdict(s) for s in streams], "wall": wall, "cpu": cpu}

    async def memory(self, config: str, n: int, count_to: int) -> dict[str, Any]:
        """Python heap (``tracemalloc``) and RSS growth of the process doing the work (the server,
        or this process for raw and run_async) while ``n`` streams are open, per stream."""
        server = self.urls.get(config)

        async def probe(action: str) -> dict[str, int]:
            if server is None:
                return memory_action(action)
            return (await self.http.post(f"{server}/__bench/memory/{action}")).json()

        sessions = [await self.prepare(config) for _ in range(n)]
        await probe("start")
        before = await probe("sample")
        opened = asyncio.Event()
        count = 0

        def one_open() -> None:
            nonlocal count
            count += 1
            if count == n:
                opened.set()

        tasks = [asyncio.ensure_future(self.stream(config, s, f"mem-{config}-{i}-{uuid.uuid4().hex[:6]}",
                                                   count_to, one_open)) for i, s in enumerate(sessions)]
        try:
            await _until_open(opened, tasks, lambda: f"{config}: {count} of {n} streams opened", 60)
            during = await probe("sample")
            still_open = sum(not t.done() for t in tasks)
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await probe("stop")
        return {"streams": n, "still_open": still_open,
                "traced_kib_per_stream": (during["traced"] - before["traced"]) / n / 1024,
                "rss_kib_per_stream": (during["rss"] - before["rss"]) / n / 1024}

    async def close(self) -> None:
        await self.http.aclose()
        await self.runner.close()
        with contextlib.suppress(Exception):
            await self.genai.aio.aclose()


async def _until_open(opened: asyncio.Event, tasks: list[asyncio.Future],
                      what: Callable[[], str], timeout: float) -> None:
    """Wait until ``opened`` is set; a stream that fails first raises its own error at once
    (waiting for the event alone hid it behind a bare TimeoutError after ``timeout`` s)."""
    waiter = asyncio.ensure_future(opened.wait())
    pending = {waiter, *tasks}
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while not opened.is_set():
            left = deadline - asyncio.get_running_loop().time()
            done, pending = await asyncio.wait(pending, timeout=max(left, 0),
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise TimeoutError(f"{what()} within {timeout:.0f} s")
            for t in done:
                if t is not waiter and t.exception() is not None:
                    raise t.exception()
            if not opened.is_set() and pending == {waiter}:
                raise RuntimeError(f"{what()}: the others ended without an event")
    finally:
        waiter.cancel()


async def client_loop() -> None:
    """Answer one JSON command per stdin line with one JSON line on stdout."""
    loop = asyncio.get_running_loop()
    urls = json.loads(os.environ.get("WORKSHOP_BENCH_URLS", "{}"))
    client = Client(urls)
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            cmd = json.loads(line)
            try:
                if cmd["cmd"] == "batch":
                    reply = await client.batch(cmd["config"], cmd["n"], cmd["count_to"], cmd["prefix"])
                elif cmd["cmd"] == "memory":
                    reply = await client.memory(cmd["config"], cmd["n"], cmd["count_to"])
                elif cmd["cmd"] == "quit":
                    return
                else:
                    reply = {"error": f"unknown command {cmd['cmd']}"}
            except Exception as exc:  # reported to the orchestrator, which raises
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    import logging

    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    if argv[0] == "client":
        asyncio.run(client_loop())
    else:
        serve(argv[0])


if __name__ == "__main__":
    main()
