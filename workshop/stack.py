"""``make serve-prod`` (``python -m workshop.stack``): the reference server as it would run in
production, on one machine: nginx in front on ``PORT`` (default 8080), ``WORKERS`` (default 2)
reference-server processes behind it, sharing sessions (the database) and live streams (Redis
or the database).

- Sessions: ``DATABASE_URL`` (PostgreSQL), else SQLite in WAL mode in ``.workshop/sessions.db``,
  shared by the workers.
- Live streams, the 409 and ``/cancel`` across workers: with ``REDIS_URL`` set, the Redis replay
  store (``reference_server/replay_redis.py``: followers are woken by Redis, no polling); else
  the database replay store (``WORKSHOP_REPLAY_STORE=database``). ``WORKSHOP_REPLAY_STORE=redis``
  or ``=database`` in the environment chooses explicitly (``memory`` would not be shared: ignored).
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
        env = env or {}
        redis_url = env.get("REDIS_URL", os.environ.get("REDIS_URL"))
        chosen = (os.environ.get("WORKSHOP_REPLAY_STORE") or "").strip().lower()  # never memory here
        store = chosen if chosen in ("database", "redis") else ("redis" if redis_url else "database")
        self.env = {**env, "WORKSHOP_REPLAY_STORE": env.get("WORKSHOP_REPLAY_STORE") or store}
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

    def _setting(self, name: str) -> str | None:
        # What the workers got: this process's environment with self.env on top (ServerProcess).
        return self.env[name] if name in self.env else os.environ.get(name)

    def describe(self) -> str:
        from reference_server.persistence import redact_url
        from reference_server.replay_redis import DEFAULT_PREFIX

        database = redact_url(self._setting("DATABASE_URL") or "SQLite .workshop/sessions.db (WAL)")
        if (self._setting("WORKSHOP_REPLAY_STORE") or "").strip().lower() == "redis":
            prefix = self._setting("WORKSHOP_REDIS_PREFIX") or DEFAULT_PREFIX
            streams = f"Redis {redact_url(self._setting('REDIS_URL') or '(REDIS_URL unset)')} (keys {prefix}*)"
        else:
            streams = f"the database ({database})"
        lines = [f"nginx {self.url} (pid {self.nginx.process.pid}, config {self.nginx.prefix}/nginx.conf)"]
        lines += [f"  worker {i + 1}: {w.url} (pid {w.pid})" for i, w in enumerate(self.workers)]
        lines.append(f"  sessions: {database}")
        lines.append(f"  live streams, 409 and /cancel across workers: {streams}")
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
