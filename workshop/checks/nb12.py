"""Checks for 12_deploying_at_scale: Exercise 12.1, the nginx directives for SSE.

The check never reads the directives: it starts Debian's nginx with them in ``location /`` of
``deploy/nginx.conf.template`` (upstream ``reference_server``), in front of a worker with a known
pace (``workshop/servers/paced.py``, which sends no ``X-Accel-Buffering`` header), and judges what
a client receives and what the worker sees (its request headers, and how much of a burst it could
send to a client that stopped reading: nginx's buffering shows there).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import time
from pathlib import Path

import httpx

from reference_server.turns import KEEPALIVE_S

from ..servers import serve_in_background
from ..servers.nginx import INSTALL_HINT, Nginx, nginx_binary
from ..servers.paced import frame_arrivals, paced_sse_app
from ._report import fail, passed

SERVER_PING_S = KEEPALIVE_S  # the reference server's `: ping` interval on a quiet stream
QUIET_S = SERVER_PING_S + 1  # the check's silence: one ping interval, and a margin
FRAMES, GAP_S = 6, 0.3  # the paced stream: frames over (FRAMES - 1) * GAP_S seconds


def _burst_frames(frame_bytes: int = 65536) -> int:
    """The burst: frames as fast as the connection takes them, to a client that reads the first
    and then nothing for up to BURST_WAIT_S. nginx with proxy_buffering on reads it all ahead (into
    its buffers, then a temp file); with it off the client holds the worker back, and the socket
    buffers on the way (Linux autotunes them on loopback) let 2-3 times the largest TCP send buffer
    through: measured 8-12 MB with Debian's 4 MiB (once 40 MiB, seven checks at once on a loaded
    CI machine), against 64 MiB here. Buffering on took all 64 MiB in under 1 s with 4 busy loops
    on 2 cores: judged buffered only when (nearly) all of it was taken."""
    try:
        send_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        send_max = 4 * 2**20
    return min(max(64 * 2**20, 16 * send_max), 256 * 2**20) // frame_bytes


BURST_FRAME_BYTES, BURST_WAIT_S = 65536, 5.0
BURST_FRAMES = _burst_frames(BURST_FRAME_BYTES)
BURST_BYTES = BURST_FRAMES * BURST_FRAME_BYTES


def nginx_available() -> bool:
    """True when nginx is installed; without it, say so (and fail under CI, as the tests do)."""
    if nginx_binary() is not None:
        return True
    if os.environ.get("CI"):
        raise RuntimeError(f"CI must run lesson 12 with nginx: {INSTALL_HINT}")
    print(f"⏭️  nginx is not installed, so this part is skipped: {INSTALL_HINT}.")
    return False


async def _read(client: httpx.AsyncClient, url: str, **kwargs) -> tuple[httpx.Response, list, str]:
    """(response, [(seconds since the request, bytes)], how the body ended: 'end' or 'cut')."""
    start = time.perf_counter()
    chunks: list[tuple[float, bytes]] = []
    async with client.stream("GET", url, **kwargs) as response:
        try:
            async for chunk in response.aiter_raw():
                chunks.append((time.perf_counter() - start, chunk))
        except httpx.RemoteProtocolError:  # the proxy closed the connection mid-body
            return response, chunks, "cut"
    return response, chunks, "end"


def _body(chunks: list) -> bytes:
    return b"".join(chunk for _, chunk in chunks)


async def _quiet_probe(client: httpx.AsyncClient) -> tuple[str, float, bytes]:
    """A frame, QUIET_S seconds of silence (a tool call between two pings), the last frame."""
    start = time.perf_counter()
    _, chunks, ending = await _read(client, f"/stream?frames=2&gap_s=0&quiet_s={QUIET_S}")
    return ending, time.perf_counter() - start, _body(chunks)


def _nginx_error(proxy: Nginx, error: Exception) -> str:
    """nginx's complaint, with the line of the config it points at and the one before it (a
    missing ';' is reported at the next line)."""
    text = str(error)
    found = re.search(r"\[emerg\] (?:\d+#\d+: )?(.*?) in \S*nginx\.conf:(\d+)", text)
    if not found:
        return text.strip().splitlines()[-1] if text.strip() else repr(error)
    lines = (proxy.prefix / "nginx.conf").read_text().splitlines()
    number = int(found.group(2))
    at = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    if not at:
        return found.group(1)
    before = next((line.strip() for line in reversed(lines[:number - 1])
                   if line.strip() and not line.strip().startswith("#")), "")
    if before.endswith(("{", "}")) or not before:
        return f"{found.group(1)}, at the line '{at}'"
    return (f"{found.group(1)}, at the line '{at}' (the line before it: '{before}'; a missing ';' "
            "shows up at the next line)")


async def check_sse_location(directives: str) -> None:
    """Start nginx with ``directives`` in ``location /`` and judge how it carries SSE."""
    if not isinstance(directives, str):
        fail(f"sse_location() returned a {type(directives).__name__}, not a string.",
             'Return the directives as one string: return """proxy_pass http://reference_server; ..."""')
    if not nginx_available():
        return
    worker = serve_in_background(paced_sse_app())
    proxy = Nginx([(worker.host, worker.port)], location=directives)
    try:
        try:
            proxy.start()
        except RuntimeError as exc:
            fail(f"nginx refused the configuration: {_nginx_error(proxy, exc)}.",
                 "Each directive ends with ';' and its name is spelled as nginx's documentation "
                 "spells it (proxy_buffering, proxy_http_version, proxy_set_header, ...).")
        async with httpx.AsyncClient(base_url=proxy.url, timeout=QUIET_S * 3,
                                     headers={"Accept-Encoding": "identity"}) as client:
            quiet = asyncio.create_task(_quiet_probe(client))  # runs while the others do
            try:
                spread, connection = await _judge(client, worker.app)
                ending, took, body = await quiet
            finally:
                if not quiet.done():
                    quiet.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await quiet
        if ending == "cut" or b"event: done" not in body:
            fail(f"nginx cut the stream after {took:.0f} s, before its last frame: {QUIET_S:.0f} s "
                 "of silence (a long tool call between two pings) does not survive.",
                 f"The server sends ': ping' every {SERVER_PING_S:.0f} s on a quiet stream, so "
                 f"proxy_read_timeout must be longer than {SERVER_PING_S:.0f} s (nginx's default is "
                 "60s; 75s or more leaves a margin). A 70 s tool call then survives.")
    finally:
        proxy.stop()
        shutil.rmtree(proxy.prefix, ignore_errors=True)
        worker.stop()
    passed(f"Frames arrived one by one (the {FRAMES} frames, sent over {(FRAMES - 1) * GAP_S:.1f} s, "
           f"arrived over {spread:.2f} s), a client that stopped reading held the worker back (no "
           f"proxy buffering), HTTP/1.1 to the worker with {connection} (kept connections), "
           f"no gzip on the stream, and {QUIET_S:.0f} s of silence survived ({took:.1f} s stream): "
           f"a 70 s tool call with a ping every {SERVER_PING_S:.0f} s gets through.")


async def _burst_sent(client: httpx.AsyncClient, app) -> int:
    """Bytes the worker sent of its burst while the client read only the first frame: polled
    in the worker itself (not through nginx) until all or BURST_WAIT_S."""
    async with client.stream("GET", f"/burst?frames={BURST_FRAMES}&size={BURST_FRAME_BYTES}") as response:
        chunks = response.aiter_raw()  # kept: a dropped iterator closes the connection
        try:
            await anext(chunks)  # the first frame, then no more reading: nginx or the worker waits
            deadline = time.perf_counter() + BURST_WAIT_S
            while app.state.burst_sent < BURST_BYTES and time.perf_counter() < deadline:
                await asyncio.sleep(0.1)
            return app.state.burst_sent
        finally:
            await chunks.aclose()


async def _judge(client: httpx.AsyncClient, app) -> tuple[float, str]:
    """Everything but the silence; returns the seconds between the first and last frame, and
    the Connection header the worker saw."""
    seen = app.state.seen
    # 1. Does it reach the worker at all?
    response, chunks, _ = await _read(client, "/stream?frames=2&gap_s=0")
    if response.status_code == 200 and b"data: frame 2" not in _body(chunks):
        fail(f"GET /stream through nginx answered 200 without the stream's frames: {_body(chunks)[:80]!r}",
             "Pass the response on as the worker sends it: proxy_pass http://reference_server; and "
             "nothing that rewrites the body.")
    if response.status_code != 200:
        by_nginx = not any(s.path == "/stream" for s in seen)
        fail(f"GET /stream through nginx answered {response.status_code}"
             + (", and the request never reached the worker." if by_nginx else "."),
             "Pass the requests on to the workers: proxy_pass http://reference_server; "
             "(the upstream block of deploy/nginx.conf.template names them so).")

    # 2. Frame by frame, or in bulk?
    response, chunks, _ = await _read(client, f"/stream?frames={FRAMES}&gap_s={GAP_S}",
                                      headers={"Accept-Encoding": "gzip, deflate, br"})
    encoding = response.headers.get("content-encoding")
    if encoding:
        fail(f"The event stream came compressed (Content-Encoding: {encoding}).",
             "Each frame is flushed as a compressed block of its own, so gzip saves little, and "
             "every hop and client must then decompress as it reads (one that waits for a whole "
             "block holds the stream back): never list text/event-stream in gzip_types, or write "
             "gzip off; in this location.")
    arrivals = frame_arrivals(chunks)
    if len(arrivals) != FRAMES:
        fail(f"The stream brought {len(arrivals)} of its {FRAMES} frames.",
             "Proxy the whole response: proxy_pass, and no limit on the body.")
    spread = arrivals[-1] - arrivals[0]
    if spread < (FRAMES - 1) * GAP_S * 0.5:
        fail(f"The {FRAMES} frames were sent {GAP_S} s apart over {(FRAMES - 1) * GAP_S:.1f} s, "
             f"but arrived within {spread:.2f} s of each other: nginx held them and sent them in bulk.",
             "This worker sends no X-Accel-Buffering header (ADK's own /run_sse does not either), and "
             "nginx keeps what an HTTP/1.0 upstream sends until it ends: proxy_buffering off; passes "
             "each piece on as it comes (and proxy_http_version 1.1; below). add_header "
             "X-Accel-Buffering only reaches the browser: it does not change nginx.")

    # 3. How nginx talks to the worker: HTTP/1.1, and a connection it keeps.
    await _read(client, "/stream?frames=1&gap_s=0")
    upstream = [s for s in seen if s.path == "/stream"]
    if any(s.http_version != "1.1" for s in upstream):
        fail(f"nginx spoke HTTP/{upstream[-1].http_version} to the worker.",
             "nginx's default upstream protocol is HTTP/1.0: the worker then ends each response by "
             "closing the connection, so every request costs a new one, and the upstream's "
             "keepalive does nothing. Write proxy_http_version 1.1;")
    if any((s.connection or "").lower() == "close" for s in upstream):
        fail("nginx sent 'Connection: close' to the worker with each request: every stream opened "
             "a new connection to it.",
             "nginx adds Connection: close upstream unless told otherwise; with proxy_http_version 1.1 "
             "clear it so the upstream's keepalive reuses connections: proxy_set_header Connection \"\";")
    connections = {(s.connection or "").lower() for s in upstream}
    if any("upgrade" in c for c in connections):
        fail("nginx sent 'Connection: upgrade' to the worker: it asked to switch protocols, as for "
             "a WebSocket.",
             "SSE is a plain HTTP response, not a WebSocket upgrade: leave out the WebSocket lines "
             "(Upgrade $http_upgrade, Connection \"upgrade\") and clear the header so the upstream's "
             "keepalive reuses connections: proxy_set_header Connection \"\";")
    odd = sorted(connections - {"", "keep-alive"})
    if odd:
        fail(f"nginx sent 'Connection: {odd[0]}' to the worker.",
             "Over HTTP/1.1 a connection stays open unless a side says otherwise: clear the header, "
             "proxy_set_header Connection \"\"; (keep-alive also works).")

    # 4. Does a client that stops reading hold the worker back, or does nginx read ahead?
    sent = await _burst_sent(client, app)
    if sent >= BURST_BYTES * 0.95:
        fail(f"nginx buffered the response: the client read one frame and stopped, and nginx still "
             f"took {sent / 2**20:.0f} of the worker's {BURST_BYTES / 2**20:.0f} MiB as fast as it "
             "came, into its buffers and a temp file. When buffered frames leave is then up to nginx "
             "(over HTTP/1.0 they wait for the end of the stream), and a client that stops reading "
             "does not hold the worker back.",
             "Write proxy_buffering off; in the location: nginx then passes each piece on as it comes. "
             "add_header X-Accel-Buffering no; only adds a header to the response the browser gets, "
             "and proxy_set_header X-Accel-Buffering no; sends it to the worker: neither changes "
             "nginx's own buffering. The app sending X-Accel-Buffering: no would (the reference "
             "server does), but this location is for apps that do not (ADK's /run_sse).")
    return spread, ("Connection: keep-alive" if "keep-alive" in connections else "no Connection header")
