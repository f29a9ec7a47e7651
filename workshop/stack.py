"""``make serve-prod`` (``python -m workshop.stack``): the reference server as it would run in
production, on one machine: nginx in front on ``PORT`` (default 8080), ``WORKERS`` (default 2)
reference-server processes behind it, sessions and live streams shared through the database.

- Sessions: ``DATABASE_URL`` (PostgreSQL), else SQLite in WAL mode in ``.workshop/sessions.db``,
  shared by the workers.
- Live streams, the 409 and ``/cancel`` across workers: the database replay store
  (``WORKSHOP_REPLAY_STORE=database``).
- Tokens: ``WORKSHOP_TOKENS``; unset, one development token for every worker, printed.
- The model: the workshop's backend (the offline emulator unless a key is set), as ``make serve``.

It prints what it started and stops everything on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading

from .backend import setup
from .servers.nginx import INSTALL_HINT, Nginx, nginx_binary
from .servers.scaleout import ServerProcess

DEFAULT_PORT = 8080
DEFAULT_WORKERS = 2


class Stack:
    """nginx on ``host:port`` and ``workers`` reference-server processes behind it."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 workers: int = DEFAULT_WORKERS, env: dict[str, str | None] | None = None,
                 **nginx_options: object) -> None:
        self.env = {"WORKSHOP_REPLAY_STORE": "database", **(env or {})}
        tokens = self.env.get("WORKSHOP_TOKENS", os.environ.get("WORKSHOP_TOKENS"))
        self.dev_token = None
        if not tokens:  # one token every worker accepts
            self.dev_token = secrets.token_urlsafe(24)
            self.env["WORKSHOP_TOKENS"] = f"{self.dev_token}:developer"
        self.workers = [ServerProcess(self.env) for _ in range(workers)]
        self.nginx = Nginx([w.address for w in self.workers], host=host, port=port, **nginx_options)

    @property
    def url(self) -> str:
        return self.nginx.url

    def start(self) -> Stack:
        try:
            for worker in self.workers:
                worker.launch()
            for worker in self.workers:
                worker.wait_ready(60)
            self.nginx.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.nginx.stop()
        for worker in self.workers:  # SIGTERM to all first: they drain at the same time
            worker.terminate()
        for worker in self.workers:
            worker.stop()

    def describe(self) -> str:
        # What the workers got: this process's environment with self.env on top (ServerProcess).
        database = (self.env.get("DATABASE_URL") or os.environ.get("DATABASE_URL")
                    or "SQLite .workshop/sessions.db (WAL)")
        if "@" in database:
            from reference_server.persistence import redact_url
            database = redact_url(database)
        lines = [f"nginx {self.url} (pid {self.nginx.process.pid}, config {self.nginx.prefix}/nginx.conf)"]
        lines += [f"  worker {i + 1}: {w.url} (pid {w.pid})" for i, w in enumerate(self.workers)]
        lines.append(f"  sessions and live streams: {database}")
        if self.dev_token:
            lines.append(f"Chat page: {self.url}/?token={self.dev_token}")
            lines.append(f"Development token (every worker): {self.dev_token}")
        return "\n".join(lines)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    if nginx_binary() is None:
        sys.exit(f"make serve-prod: nginx not found: {INSTALL_HINT}")
    setup()  # the backend: its environment is inherited by the workers
    port = int(os.environ.get("PORT", DEFAULT_PORT))
    workers = int(os.environ.get("WORKERS", DEFAULT_WORKERS))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Stack(host=os.environ.get("HOST", "127.0.0.1"), port=port, workers=workers) as stack:
        print(stack.describe(), flush=True)
        print("Ctrl-C stops everything.", flush=True)
        stop.wait()
        print("stopping nginx and the workers...", flush=True)
    print("stopped.", flush=True)


if __name__ == "__main__":
    main()
