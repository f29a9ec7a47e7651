"""Debian's ``redis-server`` on a free loopback port, as this user, in a temporary directory, with
no persistence (harness, not product): the Redis of the tests (the ``redis_url`` fixture, unless
``WORKSHOP_TEST_REDIS_URL`` names one) and of ``python -m workshop.bench.follow``.
``make serve-prod`` starts none: its workers use Redis only when ``REDIS_URL`` points at one.

    with RedisServer() as redis:          # a free port on 127.0.0.1
        store = RedisReplayStore(redis.url)   # reference_server.replay_redis

Nothing is written to disk (``--save ""``, no append-only file); ``stop()`` ends it with SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "install Debian's redis-server (apt-get install redis-server; .ci/run does)"


def redis_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(p, os.X_OK)), None)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RedisServer:
    """``redis-server`` on ``host:port`` (0: a free one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        binary = redis_binary()
        if binary is None:
            raise FileNotFoundError(f"redis-server not found: {INSTALL_HINT}")
        self.binary = binary
        self.host, self.port = host, port
        self.dir = Path(tempfile.mkdtemp(prefix="workshop-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _ping(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        return False

    def start(self, timeout: float = 15) -> RedisServer:
        for attempt in range(3):  # redis binds the port itself: retry if another took it first
            if not self.port or attempt:
                self.port = _free_port(self.host)
            self.process = subprocess.Popen(
                [self.binary, "--bind", self.host, "--port", str(self.port), "--save", "",
                 "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
                 "--logfile", str(self.dir / "redis.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            atexit.register(self.stop)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._ping():
                    return self
                time.sleep(0.02)
            self.stop()
            if "Address already in use" not in self.log():
                raise RuntimeError(f"redis-server did not start: {self.log()}")
        raise RuntimeError("redis-server: no free port after 3 tries")

    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 5) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        atexit.unregister(self.stop)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
