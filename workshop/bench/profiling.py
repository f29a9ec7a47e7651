"""Where the time goes: cProfile of the two HTTP endpoints' hot path.

cProfile sees one thread. So here each server runs under uvicorn *in the caller's event loop*
(not on a thread), next to its clients; the emulator stays on its own thread, outside the
profile. The profile then holds the server and the benchmark's client; ``CATEGORIES`` splits
the exclusive time by package so the two can be told apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import pstats
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..gemini_emulator import EmulatorHandle

# (label, substrings of the code's file path or of a built-in's name), first match wins
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("ADK session writes", ("google/adk/sessions",)),
    ("ADK runner, flows, events", ("google/adk/",)),
    ("google-genai client (response parsing)", ("google/genai/",)),
    ("pydantic (event validation, JSON)", ("pydantic",)),
    ("reference server code", ("/reference_server/",)),
    ("FastAPI, Starlette, anyio", ("fastapi", "starlette", "anyio", "sse_starlette")),
    ("uvicorn + h11 (HTTP server)", ("uvicorn", "h11", "httptools")),
    ("httpx, httpcore, httpx-sse (HTTP clients)", ("httpx", "httpcore", "httpx_sse", "aiohttp")),
    ("benchmark client", ("workshop/bench",)),
    ("asyncio event loop", ("asyncio", "selectors", "<method 'poll'", "<method 'select'")),
    ("copy / deepcopy", ("copy.py", "deepcopy")),
    ("json", ("json", "<method 'dumps'", "<method 'loads'")),
    ("socket I/O", ("socket", "<method 'send'", "<method 'recv'")),
    ("logging, OpenTelemetry", ("logging", "opentelemetry")),
]
# Named hot-path functions: (label, file path substring, function name)
HOT_PATH = [
    ("ADK InMemorySessionService.append_event (session write)", "in_memory_session_service", "append_event"),
    ("pydantic model_dump_json (event -> JSON)", "pydantic/main.py", "model_dump_json"),
    ("google-genai: parse one streamed chunk", "google/genai/", "_from_response"),
    ("reference: sse_frames (serialize + frame)", "reference_server/streaming.py", "sse_frames"),
    ("Starlette/FastAPI: encode and send SSE", "fastapi/", "_serialize_sse_item"),
]


def _category(path: str, name: str) -> str:
    key = path if path != "~" else name
    for label, needles in CATEGORIES:
        if any(n in key for n in needles):
            return label
    return "other Python" if path != "~" else "other built-ins (isinstance, getattr, ...)"


def summarize(stats: pstats.Stats, events: int, top: int = 15) -> dict[str, Any]:
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    by_category: dict[str, float] = {}
    rows = []
    for (path, line, name), (_cc, nc, tt, ct, _callers) in raw.items():
        label = _category(path, name)
        by_category[label] = by_category.get(label, 0.0) + tt
        short = path.split("site-packages/")[-1] if path != "~" else "built-in"
        rows.append({"function": f"{short}:{line}({name})", "calls": nc, "tottime_s": tt, "cumtime_s": ct,
                     "category": label})
    rows.sort(key=lambda r: -r["tottime_s"])
    hot = {}
    for label, needle, fname in HOT_PATH:
        cum = [v[3] for (path, _l, name), v in raw.items() if needle in path and name == fname]
        if cum:
            hot[label] = {"cumtime_s": max(cum), "ms_per_event": max(cum) / max(events, 1) * 1000}
    return {
        "total_s": total,
        "events": events,
        "ms_per_event": total / max(events, 1) * 1000,
        "by_category": dict(sorted(((k, {"seconds": v, "share": v / total if total else 0.0,
                                          "ms_per_event": v / max(events, 1) * 1000})
                                         for k, v in by_category.items()), key=lambda kv: -kv[1]["seconds"])),
        "hot_path": hot,
        "top_functions": rows[:top],
    }


@contextlib.asynccontextmanager
async def _in_loop_server(app: Any):
    """uvicorn serving ``app`` as a task of the running loop; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # keeps TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on",
                                           loop="asyncio", ws="none", timeout_graceful_shutdown=2))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread's job
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        sock.close()


async def profile_endpoints(emulator: EmulatorHandle, count_to: int, streams: int) -> dict[str, Any]:
    """Profile ``streams`` concurrent streams through each endpoint (twice; the second is kept)."""
    import httpx
    from httpx_sse import aconnect_sse

    from reference_server import Settings, create_app

    out: dict[str, Any] = {"streams": streams, "count_to": count_to}
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        agents_dir = Path(tmp) / "agents"
        (agents_dir / "assistant").mkdir(parents=True)
        (agents_dir / "assistant" / "__init__.py").write_text("from . import agent\n")
        (agents_dir / "assistant" / "agent.py").write_text(
            "from reference_server import build_agent\n\nroot_agent = build_agent()\n")
        from google.adk.cli.fast_api import get_fast_api_app
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"\[EXPERIMENTAL\]")
            apps = {
                "reference": create_app(Settings(tokens={"bench-token": "bench"}, database_url="memory://")),
                "run_sse": get_fast_api_app(agents_dir=str(agents_dir), web=False, session_service_uri="memory://"),
            }
        auth = {"Authorization": "Bearer bench-token"}
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=1000)) as http:
            for name, app in apps.items():
                async with _in_loop_server(app) as url:

                    async def one(i: int, url: str = url, name: str = name) -> int:
                        text = f"Count to {count_to}. (profile {i})"
                        if name == "reference":
                            sid = (await http.post(f"{url}/api/sessions", headers=auth)).json()["session_id"]
                            target, kwargs = f"{url}/api/sessions/{sid}/messages", {"json": {"text": text},
                                                                                    "headers": auth}
                        else:
                            sid = (await http.post(f"{url}/apps/assistant/users/bench/sessions")).json()["id"]
                            target, kwargs = f"{url}/run_sse", {"json": {
                                "app_name": "assistant", "user_id": "bench", "session_id": sid, "streaming": True,
                                "new_message": {"role": "user", "parts": [{"text": text}]}}}
                        n = 0
                        async with aconnect_sse(http, "POST", target, **kwargs) as source:
                            async for sse in source.aiter_sse():
                                n += sse.event != "done"
                        return n

                    await asyncio.gather(*(one(i) for i in range(streams)))  # warm
                    profiler = cProfile.Profile()
                    profiler.enable()
                    counts = await asyncio.gather(*(one(i) for i in range(streams)))
                    profiler.disable()
                    out[name] = summarize(pstats.Stats(profiler), sum(counts))
    return out
