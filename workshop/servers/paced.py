"""A tiny SSE app with a known pace, to see what a proxy does to a stream (lesson 12 and its
check): no ADK, no model, so every gap in what a client receives is the proxy's doing.

    app = paced_sse_app()
    server = serve_in_background(app)
    # GET /stream?frames=6&gap_s=0.3             six frames 0.3 s apart, then `event: done`
    # GET /stream?quiet_s=16                     a silence before the last frame (a slow tool call)
    # GET /stream?quiet_s=16&ping_s=5            ...with a `: ping` comment line every 5 s in it
    # GET /stream?hint=1                         with X-Accel-Buffering: no, as the reference server
    # GET /big.json                              a compressible JSON answer
    # GET /burst?frames=2000&size=16384          frames as fast as the connection takes them
    app.state.seen                               what each request looked like from the worker
    app.state.burst_sent                         bytes /burst handed to the connection so far

Unlike the reference server, ``/stream`` sends no ``X-Accel-Buffering: no`` unless asked (ADK's own
``/run_sse`` does not send it either), so the proxy's own settings decide.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


@dataclass(frozen=True)
class Seen:
    """One request as the worker saw it: what the proxy sent upstream."""

    path: str
    http_version: str  # "1.0" or "1.1": proxy_http_version
    connection: str | None  # the Connection header: "close" means no reuse


def paced_sse_app() -> FastAPI:
    app = FastAPI()
    app.state.seen = []
    app.state.burst_sent = 0

    @app.middleware("http")
    async def remember(request: Request, call_next):
        app.state.seen.append(Seen(request.url.path, request.scope.get("http_version", "?"),
                                   request.headers.get("connection")))
        return await call_next(request)

    @app.get("/stream")
    async def stream(frames: int = 8, gap_s: float = 0.1, quiet_s: float = 0.0, ping_s: float = 0.0,
                     hint: int = 0, pad: int = 0):
        """``frames`` frames ``gap_s`` apart, each with the server's send time; ``quiet_s``: a
        silence before the last one, with a comment line every ``ping_s`` if set; ``pad``: that many
        more bytes in each frame (a long event)."""
        async def body():
            for i in range(frames):
                if i == frames - 1 and quiet_s:
                    waited = 0.0
                    while waited < quiet_s:
                        step = min(ping_s or quiet_s, quiet_s - waited)
                        await asyncio.sleep(step)
                        waited += step
                        if ping_s and waited < quiet_s:
                            yield ": ping\n\n"
                yield f"id: {i + 1}\ndata: frame {i + 1} sent at {time.time():.3f} {'.' * pad}\n\n"
                if i < frames - 1:
                    await asyncio.sleep(gap_s)
            yield "event: done\ndata: {}\n\n"
        headers = {"Cache-Control": "no-cache"} | ({"X-Accel-Buffering": "no"} if hint else {})
        return StreamingResponse(body(), media_type="text/event-stream", headers=headers)

    @app.get("/burst")
    async def burst(frames: int = 2000, size: int = 16384):
        """A short first frame, then ``frames`` frames of ``size`` bytes each as fast as the
        connection takes them (a proxy that buffers reads them all ahead of a client that does
        not read; one that does not is held back by it). ``app.state.burst_sent`` counts the
        bytes handed over: uvicorn waits while its socket's buffers are full."""
        app.state.burst_sent = 0
        padding = "." * max(0, size - 40)

        async def body():
            yield "id: 0\ndata: frame 0\n\n"
            for i in range(frames):
                frame = f"id: {i + 1}\ndata: {padding}\n\n"
                yield frame
                app.state.burst_sent += len(frame)
            yield "event: done\ndata: {}\n\n"
        return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/big.json")
    async def big():
        return {"items": ["the same words again"] * 200}

    return app


def frame_arrivals(chunks: list[tuple[float, bytes]]) -> list[float]:
    """When each frame (``data: frame``) arrived, from (time, bytes) pairs as a client read them."""
    times, buffer = [], b""
    for at, chunk in chunks:
        buffer += chunk
        found = buffer.count(b"data: frame")
        times += [at] * (found - len(times))
    return times
