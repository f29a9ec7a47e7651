"""Reference-server processes on one machine, for scale-out (``workshop/stack.py`` puts nginx in
front of them), load tests and lessons.

    with ServerProcess(env) as server:                  # python -m reference_server
        httpx.post(f"{server.url}/api/sessions", ...)

``ServerProcess`` runs ``python -m reference_server`` on a free loopback port with the
given environment (``DATABASE_URL``, ``WORKSHOP_TOKENS``, ``GOOGLE_GEMINI_BASE_URL``...) and
waits for ``/healthz``; ``stop()`` sends SIGTERM (the server drains: reference_server/drain.py),
then kills after a timeout.
The port is bound here and the listening socket handed to the child (``WORKSHOP_LISTEN_FD``):
a port found free and bound later by the child could be taken in between by another server,
which would then answer the health check in its place. ``start_processes(n, env)`` starts
several in parallel.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping

import httpx

from reference_server.__main__ import LISTEN_FD_ENV
from reference_server.drain import SHUTDOWN_MARGIN_S, drain_s_from_env

from .background import tcp_socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m reference_server`` in a child process on ``host:port``; its
    environment is this process's with ``env`` on top (a value of None removes a variable)."""

    def __init__(self, env: Mapping[str, str | None], host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._sock = tcp_socket(host, port)
        self._sock.listen(2048)  # listening now: nobody can take the port before the child serves it
        self.port = self._sock.getsockname()[1]
        merged = {**os.environ, "LOG_LEVEL": "warning", **env, "HOST": host, "PORT": str(self.port)}
        self.env = {name: value for name, value in merged.items() if value is not None}  # None: unset
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def launch(self) -> ServerProcess:
        """Start the process without waiting (``wait_ready()`` waits)."""
        self._log = tempfile.TemporaryFile()  # a pipe nobody reads would block the server when full
        fd = self._sock.fileno()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reference_server"], env={**self.env, LISTEN_FD_ENV: str(fd)},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log, pass_fds=(fd,),
        )
        self._sock.close()  # the child has its own copy
        atexit.register(self.stop)  # never outlive this process (a notebook kernel, a test run)
        return self

    def wait_ready(self, timeout: float = 30) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = self.log()[-2000:]
                raise RuntimeError(f"reference server exited with {self.process.returncode}: {err}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"reference server did not answer on {self.url} in {timeout} s")
            time.sleep(0.05)

    def start(self, timeout: float = 30) -> ServerProcess:
        return self.launch().wait_ready(timeout)

    @property
    def drain_s(self) -> float:
        """How long the server lets running turns finish after SIGTERM (reference_server/drain.py)."""
        return drain_s_from_env(self.env)

    def terminate(self) -> None:
        """SIGTERM without waiting: the server drains (no new turns, running ones finish or are
        handed over) while the caller watches; ``stop()`` then waits for the exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM (the server drains, then uvicorn closes the port), then SIGKILL after
        ``timeout`` (default: the drain and uvicorn's graceful shutdown, and 5 s more)."""
        self._sock.close()  # never launched: free the port
        if self.process is None or self.process.poll() is not None:
            return
        atexit.unregister(self.stop)
        if timeout is None:
            timeout = self.drain_s + SHUTDOWN_MARGIN_S + 5
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def log(self) -> str:
        """What the process wrote to stderr so far (warnings and errors)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def rss_bytes(self) -> int:
        """The process's resident memory now (Linux ``/proc``)."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def __enter__(self) -> ServerProcess:
        return self.start() if self.process is None else self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_processes(n: int, env: Mapping[str, str | None], timeout: float = 60) -> list[ServerProcess]:
    """``n`` server processes started in parallel (each takes a second or two to import)."""
    servers = [ServerProcess(env).launch() for _ in range(n)]
    try:
        for server in servers:
            server.wait_ready(timeout)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers
