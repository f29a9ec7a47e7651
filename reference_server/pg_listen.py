"""PostgreSQL ``LISTEN``: one connection per process that hears the ``NOTIFY``s of every process.

``Listener(dsn, channels, on_notify, on_gap)`` keeps one asyncpg connection (its own, outside
SQLAlchemy's pool: it sits in ``LISTEN`` for the life of the process) listening on
``channels``, and calls ``on_notify(channel, payload)`` for each notification, on the event
loop that started it. ``NOTIFY`` is transactional: sent inside the transaction that made the
change, it is delivered when (and only if) that transaction commits.

A notification sent while the connection is down is lost, never queued. So ``on_gap()`` is
called when the connection is lost and again once ``LISTEN`` is in place after a (re)connect:
the caller re-reads whatever it waits for, and misses nothing. The connection is re-opened
with a backoff (0.1 s doubling to 5 s), and checked with a ``SELECT 1`` every ``check_s``
(a connection that died silently, without the socket closing, is found that way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger("reference_server")

RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0


class Listener:
    """One ``LISTEN`` connection, started by ``start()`` (from the event loop that will use it),
    re-opened when it drops, closed by ``close()``."""

    def __init__(self, dsn: str, channels: Iterable[str], on_notify: Callable[[str, str], None],
                 on_gap: Callable[[], None], *, connect_args: dict[str, Any] | None = None,
                 check_s: float = 10.0) -> None:
        self._dsn = dsn
        self._channels = tuple(channels)
        self._on_notify = on_notify
        self._on_gap = on_gap
        self._connect_args = connect_args or {}
        self.check_s = check_s
        self._task: asyncio.Task | None = None
        self.connections = 0  # how many times LISTEN was set up (tests read it)
        self.server_pid: int | None = None  # the listening backend (tests terminate it)

    def start(self) -> None:
        """Start listening (a no-op while the task runs on this loop)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run(), name="pg-listener")

    async def _run(self) -> None:
        import asyncpg  # the driver SQLAlchemy already uses for PostgreSQL

        delay = RECONNECT_MIN_S
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, **self._connect_args)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in self._channels:
                    await conn.add_listener(channel, self._dispatch)
                self.server_pid = conn.get_server_pid()
                self.connections += 1
                delay = RECONNECT_MIN_S
                self._on_gap()  # changes committed before LISTEN took effect: read them now
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.check_s):
                            await lost.wait()
                    if not lost.is_set():
                        async with asyncio.timeout(self.check_s):
                            await conn.execute("SELECT 1")
                logger.warning("LISTEN connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # includes asyncpg's errors and OSError: try again
                logger.warning("LISTEN connection failed (%s: %s); retrying in %.1f s",
                               type(exc).__name__, exc, delay)
            finally:
                self.server_pid = None
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            self._on_gap()  # nothing is heard while disconnected: waiters read for themselves
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    def _dispatch(self, _conn, _pid: int, channel: str, payload: str) -> None:
        self._on_notify(channel, payload)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        if task.get_loop() is asyncio.get_running_loop():
            with contextlib.suppress(asyncio.CancelledError):
                await task
