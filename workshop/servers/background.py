"""Run an ASGI app under real uvicorn on a background thread (notebooks and tests).

    with BackgroundServer(app) as server:      # a free port on 127.0.0.1
        httpx.get(f"{server.url}/healthz")

The socket is bound before uvicorn starts, so ``url`` is known at once; ``stop()`` asks
uvicorn to shut down, waits a bounded time for open streams, then forces it. Errors that
uvicorn logs for this server ("Exception in ASGI application") are kept in ``errors``
instead of being printed.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn


class _Keep(logging.Handler):
    def __init__(self, server: BackgroundServer) -> None:
        super().__init__(logging.ERROR)
        self.server = server

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.server.thread_id:
            return
        line = record.getMessage().strip()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line = f"{line}: {type(exc).__name__}: {exc}"
        self.server.errors.append(line)

def tcp_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: a free port) for a server to listen on.

    IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    listening socket says it is TCP. Without it Nagle's algorithm meets the client's delayed
    ACK and holds back each small SSE frame by about 40 ms."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock

class BackgroundServer:
    """uvicorn serving ``app`` on ``host:port`` (port 0: a free one) from its own thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *,
                 graceful_shutdown_s: float = 2.0) -> None:
        self.app = app
        self.errors: list[str] = []
        self._sock = tcp_socket(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on",
                                loop="asyncio", ws="none",
                                timeout_graceful_shutdown=graceful_shutdown_s)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"uvicorn-{self.port}", daemon=True)
        self._handler = _Keep(self)
        self.thread_id: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10) -> BackgroundServer:
        logging.getLogger("uvicorn.error").addHandler(self._handler)
        self._thread.start()
        self.thread_id = self._thread.ident
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5) -> None:
        """Shut down (open streams get ``graceful_shutdown_s`` to finish), then free the port."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._sock.close()
        logging.getLogger("uvicorn.error").removeHandler(self._handler)

    def drop_connections(self) -> int:
        """Close every open client connection at once, without a word: what a network failure,
        a proxy's timeout or a laptop's lid does to a stream (tests and notebook 09). The
        server keeps running; returns how many connections were dropped."""
        protocols = list(self._server.server_state.connections)
        for protocol in protocols:  # transports belong to the server's loop: close them there
            protocol.loop.call_soon_threadsafe(protocol.transport.abort)
        return len(protocols)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._server.started and not self._server.should_exit

    def __enter__(self) -> BackgroundServer:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<BackgroundServer {self.url} {'running' if self.running else 'stopped'}>"

def serve_in_background(app: Any, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> BackgroundServer:
    """Start ``app`` under uvicorn on a background thread and return the running server."""
    return BackgroundServer(app, host, port, **kwargs).start()
