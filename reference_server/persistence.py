"""Where conversations live: ADK's own session services, chosen by one ``DATABASE_URL``.

``session_service_from_url(url)``:

- unset or empty: SQLite in ``.workshop/sessions.db`` at the project's root (embedded, nothing
  to install; ``DEFAULT_SQLITE_PATH``), through ADK's ``SqliteSessionService`` (aiosqlite),
  with this process's writes queued, on connections that stay open
  (``SerializedSqliteSessionService``);
- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``: SQLite in that file;
- ``postgresql://user:password@host:5432/db`` (or ``postgres://``, or
  ``postgresql+asyncpg://``): PostgreSQL through ADK's ``DatabaseSessionService``
  (SQLAlchemy's asyncio engine with the asyncpg driver; the tables are created on first use,
  or before several servers start by ``prepare_database(url)``);
- any other SQLAlchemy URL with an async driver (``mysql+aiomysql://...``):
  ``DatabaseSessionService`` as it is;
- ``memory://``: ADK's ``InMemorySessionService`` (tests; lost at exit).

``Settings.from_env()`` reads ``DATABASE_URL`` (``DATABASE_URL_ENV``), ``Settings(...)`` built
in code its ``database_url``: unset, both end up in the same SQLite file (one default).

Ownership needs no table of its own: a session is stored under ``(app_name, user_id, id)``
and the server looks it up with the caller's user id, so another user's id finds nothing
(404), after a restart and from any process that shares the database.

Resumable streams across processes: with ``WORKSHOP_REPLAY_STORE=database``,
``Settings.from_env()`` puts the replay buffer in the same database
(``DatabaseReplayStore``); with ``REDIS_URL`` (or ``WORKSHOP_REPLAY_STORE=redis``) in Redis
(replay_redis.py); the default is the server's in-memory store (one process).

Secrets: ``redact_url`` hides a URL's password before it is printed or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiosqlite
from google.adk.events import Event
from google.adk.sessions import BaseSessionService, InMemorySessionService, Session
from google.adk.sessions.sqlite_session_service import (
    CREATE_SCHEMA_SQL,
    PRAGMA_FOREIGN_KEYS,
    SqliteSessionService,
)

from .replay import EVENT, Frame, ReplayStore, Tail, TurnState

DATABASE_URL_ENV = "DATABASE_URL"
POOL_SIZE_ENV = "DATABASE_POOL_SIZE"
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the folder that holds reference_server/
DEFAULT_SQLITE_PATH = PROJECT_ROOT / ".workshop" / "sessions.db"
MEMORY_URLS = ("memory://", "memory:", "memory")
SQLITE_BUSY_TIMEOUT_MS = 10_000  # writers from other connections or processes wait this long


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for banners and log lines)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _sqlite_path(url: str) -> Path:
    """``sqlite:///rel.db`` -> ``rel.db`` (relative to the working directory, as in
    SQLAlchemy); ``sqlite:////abs.db`` -> ``/abs.db``."""
    scheme, sep, rest = url.partition(":///")
    if not sep or not rest or "?" in rest:
        raise ValueError(f"{DATABASE_URL_ENV}: expected sqlite:///path/to/file.db, got {url!r}")
    return Path(rest)


def prepare_sqlite_file(path: Path) -> Path:
    """Create ``path``'s directory and put the database in WAL mode (readers never block the
    writer; several processes on one machine can share the file). WAL is a property of the
    file: set once, it stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)) as conn:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
            return path
        except sqlite3.OperationalError as exc:
            # Two processes starting on a new file: switching the journal mode can answer
            # "database is locked" at once (SQLite's busy handler does not cover that lock
            # change), so wait and try again.
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


_WRITING: contextvars.ContextVar[bool] = contextvars.ContextVar("sqlite_writing", default=False)


class SerializedSqliteSessionService(SqliteSessionService):
    """ADK's ``SqliteSessionService``, with this process's writes taken one at a time on one
    connection that stays open, and reads on a few that stay open too.

    SQLite has one writer at a time per file. ADK's service opens a connection per call and
    leaves waiting to SQLite's busy handler (5 s), which under a few hundred concurrent turns
    gives up: ``sqlite3.OperationalError: database is locked`` mid-stream (measured with
    ``python -m workshop.loadtest --streams 200``). Queueing the writes on an asyncio lock
    first is fair and cheap; other processes sharing the file still meet the busy handler,
    which is where PostgreSQL takes over. Use it from one event loop.

    Why connections that stay open: ADK's opens one per call, and with aiosqlite that is a new
    thread, a file open and a ``PRAGMA`` each time, five or more times per turn (create the
    session, look it up, ADK's own look-up, the user's message, the answer); that made a turn
    on SQLite cost more than ``/run_sse``'s (notebook 11). The file is in WAL mode
    (``prepare_sqlite_file``), so the readers never wait for the writer. A connection whose
    call failed is rolled back (or closed) before it is used again.
    """

    MAX_IDLE_READERS = 4  # more concurrent reads open more connections, closed after use

    def __init__(self, db_path: str) -> None:
        super().__init__(db_path)
        self._write_lock = asyncio.Lock()
        self._writer: aiosqlite.Connection | None = None
        self._idle_readers: list[aiosqlite.Connection] = []
        self.connections_opened = 0  # a test reads it: none per turn once warm

    async def create_session(self, **kwargs) -> Session:
        async with self._write_lock:
            token = _WRITING.set(True)
            try:
                return await super().create_session(**kwargs)
            finally:
                _WRITING.reset(token)

    async def append_event(self, session: Session, event: Event) -> Event:
        async with self._write_lock:
            token = _WRITING.set(True)
            try:
                return await super().append_event(session, event)
            finally:
                _WRITING.reset(token)

    async def delete_session(self, **kwargs) -> None:
        async with self._write_lock:
            token = _WRITING.set(True)
            try:
                return await super().delete_session(**kwargs)
            finally:
                _WRITING.reset(token)

    async def _open(self) -> aiosqlite.Connection:
        conn = aiosqlite.connect(self._db_connect_path, uri=self._db_connect_uri,
                                 timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        getattr(conn, "_thread", conn).daemon = True  # as ADK's: never blocks exit
        await conn
        self.connections_opened += 1
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute(PRAGMA_FOREIGN_KEYS)
            if not self._schema_ready:
                async with self._schema_lock:
                    if not self._schema_ready:
                        await conn.executescript(CREATE_SCHEMA_SQL)
                        self._schema_ready = True
        except BaseException:
            await conn.close()
            raise
        return conn

    @contextlib.asynccontextmanager
    async def _get_db_connection(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._db_path in ("", ":memory:"):  # ADK keeps one connection already
            async with super()._get_db_connection() as db:
                yield db
            return
        writing = _WRITING.get()  # under _write_lock: the one writer connection is ours
        if writing:
            conn = self._writer = self._writer or await self._open()
        else:
            conn = self._idle_readers.pop() if self._idle_readers else await self._open()
        healthy = True
        try:
            yield conn
        except BaseException:
            try:
                await conn.rollback()
            except BaseException:
                healthy = False
            raise
        finally:
            if not healthy:
                with contextlib.suppress(Exception):
                    await conn.close()
                if writing:
                    self._writer = None
            elif not writing:
                if len(self._idle_readers) < self.MAX_IDLE_READERS:
                    self._idle_readers.append(conn)
                else:
                    await conn.close()

    async def close(self) -> None:
        conns = [c for c in (self._writer, *self._idle_readers) if c is not None]
        self._writer, self._idle_readers = None, []
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close()
        await super().close()


def session_service_from_url(url: str | None = None, **engine_kwargs: Any) -> BaseSessionService:
    """The ADK session service for ``url`` (see the module docstring for the forms).

    ``engine_kwargs`` go to SQLAlchemy's ``create_async_engine`` (PostgreSQL and other
    SQLAlchemy URLs only), e.g. ``poolclass=NullPool`` for a service used from more than one
    event loop, or ``pool_size=20``.
    """
    url = (url or "").strip()
    if url.lower() in MEMORY_URLS:
        return InMemorySessionService()
    if not url or url.startswith(("sqlite:", "sqlite+aiosqlite:")):
        path = DEFAULT_SQLITE_PATH if not url else _sqlite_path(url)
        return SerializedSqliteSessionService(str(prepare_sqlite_file(path)))
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgres", "postgresql"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    elif "://" not in url:
        raise ValueError(f"{DATABASE_URL_ENV}: not a database URL: {redact_url(url)!r}")
    from google.adk.sessions import DatabaseSessionService  # needs sqlalchemy[asyncio] (+ asyncpg)

    return DatabaseSessionService(url, **engine_kwargs)


async def prepare_database(url: str | None = None) -> None:
    """Create ADK's tables now. Each service creates them on first use; several servers
    starting at once on a fresh PostgreSQL database can collide in its catalog, so run this
    once before starting them (a deploy step). On PostgreSQL it holds an advisory lock."""
    from sqlalchemy.pool import NullPool

    url = (url or "").strip()
    is_sql_alchemy = "://" in url and not url.startswith(("sqlite", "memory"))
    service = session_service_from_url(url, poolclass=NullPool) if is_sql_alchemy else session_service_from_url(url)
    engine = getattr(service, "db_engine", None)
    try:
        if engine is not None and engine.dialect.name == "postgresql":
            from sqlalchemy import text

            async with engine.connect() as lock:
                await lock.execute(text("SELECT pg_advisory_lock(20260906)"))
                try:
                    await service.list_sessions(app_name="-", user_id="-")
                finally:
                    await lock.execute(text("SELECT pg_advisory_unlock(20260906)"))
        else:
            await service.list_sessions(app_name="-", user_id="-")
    finally:
        if engine is not None:
            await service.close()


def session_service_from_env(environ: Mapping[str, str]) -> BaseSessionService:
    """``session_service_from_url(environ["DATABASE_URL"])``; unset: the default SQLite file.
    ``DATABASE_POOL_SIZE`` (PostgreSQL): connections kept open per process (SQLAlchemy's
    default: 5, plus 10 overflow)."""
    url = environ.get(DATABASE_URL_ENV)
    pool_size = environ.get(POOL_SIZE_ENV, "").strip()
    if pool_size and url and "://" in url and not url.startswith(("sqlite", "memory")):
        if not pool_size.isdigit() or int(pool_size) < 1:
            raise ValueError(f"{POOL_SIZE_ENV} must be a positive integer, not {pool_size!r}")
        return session_service_from_url(url, pool_size=int(pool_size))
    return session_service_from_url(url)


def describe(service: BaseSessionService) -> str:
    """One line naming where sessions live (no password), for the start-up banner."""
    name = type(service).__name__
    if hasattr(service, "_db_path"):  # SqliteSessionService
        return f"{name} ({service._db_path})"
    engine = getattr(service, "db_engine", None)
    if engine is not None:
        return f"{name} ({engine.url.render_as_string(hide_password=True)})"
    return name



# -- a replay buffer that several processes share --------------------------------------------
REPLAY_STORE_ENV = "WORKSHOP_REPLAY_STORE"  # "memory" (the default), "database" or "redis"
REDIS_URL_ENV = "REDIS_URL"  # set (and WORKSHOP_REPLAY_STORE unset): the Redis store
REDIS_PREFIX_ENV = "WORKSHOP_REDIS_PREFIX"  # its keys' prefix (replay_redis.DEFAULT_PREFIX)


def async_database_url(url: str | None) -> str:
    """``DATABASE_URL`` as a SQLAlchemy URL with an async driver (aiosqlite, asyncpg)."""
    url = (url or "").strip()
    if not url or url.startswith("sqlite:"):
        path = DEFAULT_SQLITE_PATH if not url else _sqlite_path(url)
        return f"sqlite+aiosqlite:///{prepare_sqlite_file(path)}"
    scheme, _, rest = url.partition("://")
    if scheme.lower() in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    return url


class DatabaseReplayStore(ReplayStore):
    """The replay buffer (``ReplayStore``, see replay.py) in two tables of the shared database,
    so that a client can resume a turn on any process: ``replay_turns`` (each session's latest
    turn and when it ended) and ``replay_frames`` (its frames).

    ``wait`` wakes at once for frames appended by this process. Frames appended by another:
    on PostgreSQL (asyncpg), each change sends a ``NOTIFY`` (``CHANGED_CHANNEL``, payload: the
    session id) in its own transaction, so it is heard when it commits; one ``LISTEN``
    connection per store (pg_listen.py) wakes this process's waiters at once, and the table is
    still read every ``poll_s`` (default 1 s) in case a notification is lost. On SQLite, which
    has no notifications, ``wait`` reads the table every ``poll_s`` (default 0.1 s). Each frame
    is one ``INSERT``: fine on PostgreSQL; on SQLite, one file shared by several processes,
    every frame competes for the single writer.

    The turn state is shared too (``replay_turns``' other columns): ``owner_at``, when the
    process running the turn last checked in (every second); ``cancel_requested``, set by a
    process that got ``POST .../cancel`` for a turn it does not run (the owner polls for it every
    0.25 s; on PostgreSQL a ``NOTIFY`` on ``CANCEL_CHANNEL`` wakes it at once: ``cancel_asked``);
    ``reader_at``, when a client following the turn from another process was last seen (the
    owner does not end the grace period while it is recent); ``idempotency_key``, the key of the
    message that started the turn. A turn starts with ``begin_turn``, atomic on any
    number of processes. See turns.py.
    """

    shared = True

    CHANGED_CHANNEL = "replay_changed"  # a session's frames or turn changed (payload: its id)
    CANCEL_CHANNEL = "replay_cancel"  # a cancel was asked for a session's turn (payload: its id)
    POLL_S = 0.1  # SQLite: how often a waiter reads the table
    SAFETY_POLL_S = 1.0  # PostgreSQL: the same, in case a notification was lost

    def __init__(self, url: str | None = None, ttl_s: float = 300.0, poll_s: float | None = None,
                 clock=None, **engine_kwargs: Any) -> None:
        import time

        import sqlalchemy as sa
        from sqlalchemy.ext.asyncio import create_async_engine

        self.ttl_s = ttl_s
        self._clock = clock or time.time  # wall clock: processes compare each other's times
        self._sa = sa
        url = async_database_url(url)
        if url.startswith("sqlite"):  # wait for the file's one writer (default 5 s)
            engine_kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        self.engine = create_async_engine(url, **engine_kwargs)
        # NOTIFY/LISTEN with the driver already in use (asyncpg); other drivers poll.
        self.notifies = self.engine.dialect.name == "postgresql" and self.engine.dialect.driver == "asyncpg"
        self.poll_s = poll_s if poll_s is not None else self.SAFETY_POLL_S if self.notifies else self.POLL_S
        self.listener = None
        if self.notifies:
            from .pg_listen import Listener

            dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.listener = Listener(dsn, (self.CHANGED_CHANNEL, self.CANCEL_CHANNEL), self._notified,
                                     self._wake_all, connect_args=engine_kwargs.get("connect_args"))
        metadata = sa.MetaData()
        self.turns = sa.Table(
            "replay_turns", metadata,
            sa.Column("session_id", sa.String(128), primary_key=True),
            sa.Column("turn_id", sa.String(64), nullable=False),
            sa.Column("ended_at", sa.Float, nullable=True),
            sa.Column("owner_at", sa.Float, nullable=True),
            sa.Column("reader_at", sa.Float, nullable=True),
            sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("idempotency_key", sa.String(128), nullable=True))
        self.frames = sa.Table(
            "replay_frames", metadata,
            sa.Column("session_id", sa.String(128), primary_key=True),
            sa.Column("turn_id", sa.String(64), primary_key=True),
            sa.Column("frame_id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("event", sa.String(32), nullable=True),  # the kind; NULL: an ADK event
            sa.Column("data", sa.Text, nullable=False),
            sa.Column("code", sa.String(64), nullable=True))
        self._metadata = metadata
        self._ready = False
        self._init_lock = asyncio.Lock()
        self._waiters: dict[str, set[asyncio.Event]] = {}  # per session, this process's waiters
        self._cancel_asked = asyncio.Event()  # set by a cancel NOTIFY (cancel_asked)
        self._gaps = 0  # times the listener was (re)connected or lost (_wake_all)

    async def _begin(self):
        if not self._ready:
            async with self._init_lock:  # once per process, not once per concurrent request
                if not self._ready:
                    await self._create_tables()
                    self._ready = True
        return self.engine.begin()

    async def _create_tables(self, attempts: int = 5) -> None:
        """Create (or complete) the tables. Several processes starting at once race to do it:
        whoever loses gets a database error (SQLite: locked; PostgreSQL: a duplicate in the
        catalog) and tries again, by when the tables are there."""
        for attempt in range(1, attempts + 1):
            try:
                async with self.engine.begin() as conn:
                    await conn.run_sync(self._metadata.create_all)
                async with self.engine.begin() as conn:
                    await conn.run_sync(self._add_missing_columns)
                return
            except self._sa.exc.DBAPIError:
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.1 * attempt)

    def _add_missing_columns(self, conn) -> None:
        """Tables made by an earlier version lack the turn state columns and the frame's code."""
        inspector = self._sa.inspect(conn)
        for table in (self.turns, self.frames):
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have:
                    ddl = column.type.compile(conn.dialect)
                    default = " NOT NULL DEFAULT FALSE" if column.name == "cancel_requested" else ""
                    with contextlib.suppress(self._sa.exc.DBAPIError):  # another process added it
                        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {ddl}{default}")

    def _wake(self, session_id: str) -> None:
        for event in self._waiters.get(session_id, ()):
            event.set()

    def _wake_all(self) -> None:
        """The listener was (re)connected or lost: every waiter reads the table again."""
        self._gaps += 1
        for events in self._waiters.values():
            for event in events:
                event.set()
        self._cancel_asked.set()

    def _notified(self, channel: str, session_id: str) -> None:
        if channel == self.CANCEL_CHANNEL:
            self._cancel_asked.set()
        else:
            self._wake(session_id)

    async def _notify(self, conn, channel: str, session_id: str) -> None:
        """``NOTIFY`` inside the caller's transaction: heard by the listeners when it commits."""
        if self.notifies:
            await conn.execute(self._sa.select(self._sa.func.pg_notify(channel, session_id)))

    async def begin_turn(self, session_id: str, turn_id: str, *, owner_stale_s: float,
                         key: str | None = None) -> bool:
        """One conditional ``UPDATE`` of the session's row (taken only if its turn ended, or its
        owner stopped checking in), else one ``INSERT`` (refused by the primary key if another
        request inserted first): whichever of N racing requests, on any process, changes the
        row starts the turn; the others get False. Portable SQL, no dialect-specific upsert."""
        sa, t = self._sa, self.turns.c
        now = self._clock()
        fresh = {"turn_id": turn_id, "ended_at": None, "owner_at": now, "reader_at": None,
                 "cancel_requested": False, "idempotency_key": key}
        async with await self._begin() as conn:
            taken = await conn.execute(sa.update(self.turns).where(
                t.session_id == session_id,
                sa.or_(t.ended_at.is_not(None), t.owner_at.is_(None), t.owner_at < now - owner_stale_s),
            ).values(**fresh))
            claimed = taken.rowcount == 1
            if claimed:
                await conn.execute(sa.delete(self.frames).where(
                    self.frames.c.session_id == session_id, self.frames.c.turn_id != turn_id))
                await self._notify(conn, self.CHANGED_CHANNEL, session_id)  # the old turn's readers
        if not claimed:
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(sa.insert(self.turns).values(session_id=session_id, **fresh))
                    await self._notify(conn, self.CHANGED_CHANNEL, session_id)
            except sa.exc.IntegrityError:  # the row exists: a turn is running (or just started)
                return False
        self._wake(session_id)
        return True

    async def append(self, session_id: str, turn_id: str, frame: Frame) -> None:
        """One ``INSERT ... SELECT ... WHERE`` the turn is still the session's running one: a
        write from its first statement. (A ``SELECT`` then an ``INSERT`` in one transaction
        fails at once on SQLite in WAL mode, "database is locked", no busy wait, when another
        process wrote in between.)"""
        sa, t = self._sa, self.turns.c
        running = sa.select(t.session_id).where(t.session_id == session_id, t.turn_id == turn_id,
                                                t.ended_at.is_(None))
        row = sa.select(sa.literal(session_id, sa.String), sa.literal(turn_id, sa.String),
                        sa.literal(frame.id, sa.Integer),
                        sa.literal(None if frame.kind == EVENT else frame.kind, sa.String),
                        sa.literal(frame.data, sa.Text), sa.literal(frame.code, sa.String))
        insert = sa.insert(self.frames).from_select(
            ["session_id", "turn_id", "frame_id", "event", "data", "code"], row.where(running.exists()))
        if self.notifies:  # the NOTIFY in the same statement, for the row inserted: no round trip
            insert = insert.returning(sa.func.pg_notify(self.CHANGED_CHANNEL, self.frames.c.session_id))
        async with await self._begin() as conn:
            added = await conn.execute(insert)
            if (len(added.all()) if self.notifies else added.rowcount) != 1:
                return  # the turn was replaced or already ended
            if frame.terminal:
                await conn.execute(sa.update(self.turns).where(t.session_id == session_id,
                                                               t.turn_id == turn_id)
                                   .values(ended_at=self._clock()))
        self._wake(session_id)

    async def read(self, session_id: str, after: int) -> Tail | None:
        sa = self._sa
        async with await self._begin() as conn:
            row = (await conn.execute(sa.select(self.turns.c.turn_id, self.turns.c.ended_at,
                                                self.turns.c.idempotency_key)
                                      .where(self.turns.c.session_id == session_id))).first()
            if row is None:
                return None
            if row.ended_at is not None and self._clock() - row.ended_at > self.ttl_s:
                await conn.execute(sa.delete(self.frames).where(self.frames.c.session_id == session_id))
                await conn.execute(sa.delete(self.turns).where(self.turns.c.session_id == session_id))
                return None
            rows = await conn.execute(
                sa.select(self.frames.c.frame_id, self.frames.c.event, self.frames.c.data,
                          self.frames.c.code)
                .where(self.frames.c.session_id == session_id, self.frames.c.turn_id == row.turn_id,
                       self.frames.c.frame_id > after)
                .order_by(self.frames.c.frame_id))
            frames = [Frame(r.frame_id, r.event or EVENT, r.data, r.code) for r in rows]
        return Tail(row.turn_id, frames, row.ended_at is not None, row.idempotency_key)

    async def _latest(self, session_id: str) -> tuple[int, bool, str | None]:
        sa = self._sa
        async with await self._begin() as conn:
            row = (await conn.execute(sa.select(self.turns.c.turn_id, self.turns.c.ended_at)
                                      .where(self.turns.c.session_id == session_id))).first()
            if row is None:
                return 0, True, None
            last = (await conn.execute(sa.select(sa.func.max(self.frames.c.frame_id)).where(
                self.frames.c.session_id == session_id, self.frames.c.turn_id == row.turn_id))).scalar()
        return last or 0, row.ended_at is not None, row.turn_id

    async def wait(self, session_id: str, after: int, timeout: float) -> None:
        if self.listener is not None:
            self.listener.start()  # lazily, on the loop that waits; once
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        event = asyncio.Event()
        waiters = self._waiters.setdefault(session_id, set())
        waiters.add(event)  # before the read: a change during it wakes the wait below
        try:
            while True:
                event.clear()
                gaps = self._gaps  # before the read: a (re)connect during it is a gap, not news
                last, ended, _ = await self._latest(session_id)
                remaining = deadline - loop.time()
                if last > after or ended or remaining <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self.poll_s, remaining)):
                        await event.wait()
                        if self._gaps == gaps:
                            return  # this session's change was announced: the caller reads it
        finally:
            waiters.discard(event)
            if not waiters and self._waiters.get(session_id) is waiters:
                del self._waiters[session_id]

    @property
    def pushes_cancels(self) -> bool:  # PostgreSQL: a cancel NOTIFY wakes cancel_asked
        return self.listener is not None

    async def cancel_asked(self, session_ids: list[str], timeout: float) -> None:
        if self.listener is None:
            await asyncio.sleep(timeout)
            return
        self.listener.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._cancel_asked.wait()
        self._cancel_asked.clear()  # after, not before: one heard during the caller's check stays set

    async def purge(self) -> int:
        sa = self._sa
        cutoff = self._clock() - self.ttl_s
        async with await self._begin() as conn:
            expired = [r.session_id for r in await conn.execute(
                sa.select(self.turns.c.session_id).where(self.turns.c.ended_at < cutoff))]
            if expired:
                await conn.execute(sa.delete(self.frames).where(self.frames.c.session_id.in_(expired)))
                await conn.execute(sa.delete(self.turns).where(self.turns.c.session_id.in_(expired)))
        return len(expired)

    async def turn_state(self, session_id: str) -> TurnState | None:
        t = self.turns.c
        async with await self._begin() as conn:
            row = (await conn.execute(self._sa.select(t.turn_id, t.ended_at, t.owner_at, t.reader_at,
                                                      t.cancel_requested)
                                      .where(t.session_id == session_id))).first()
        if row is None:
            return None
        now = self._clock()
        return TurnState(row.turn_id, row.ended_at is not None, now - (row.owner_at or 0.0),
                         None if row.reader_at is None else now - row.reader_at, bool(row.cancel_requested))

    async def owner_alive(self, session_ids: list[str], beat: bool) -> set[str]:
        if not session_ids:
            return set()
        sa, t = self._sa, self.turns.c
        async with await self._begin() as conn:
            if beat:
                await conn.execute(sa.update(self.turns).where(t.session_id.in_(session_ids), t.ended_at.is_(None))
                                   .values(owner_at=self._clock()))
            rows = await conn.execute(sa.select(t.session_id).where(
                t.session_id.in_(session_ids), t.ended_at.is_(None), t.cancel_requested.is_(True)))
            return {r.session_id for r in rows}

    async def mark(self, session_id: str, turn_id: str, *, reader: bool = False,
                   cancel: bool = False) -> None:
        values = {**({"reader_at": self._clock()} if reader else {}),
                  **({"cancel_requested": True} if cancel else {})}
        if values:
            t = self.turns.c
            async with await self._begin() as conn:
                await conn.execute(self._sa.update(self.turns).where(
                    t.session_id == session_id, t.turn_id == turn_id, t.ended_at.is_(None)).values(**values))
                if cancel:
                    await self._notify(conn, self.CANCEL_CHANNEL, session_id)
            if cancel:
                self._cancel_asked.set()  # the owner may be this process

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        self._wake_all()
        await self.engine.dispose()


def replay_store_from_env(environ: Mapping[str, str], ttl_s: float) -> ReplayStore | None:
    """The replay store that ``WORKSHOP_REPLAY_STORE`` names: ``memory`` (None: the server's
    in-memory store, one process), ``database`` (``DatabaseReplayStore`` on ``DATABASE_URL``) or
    ``redis`` (``RedisReplayStore`` on ``REDIS_URL``, keys prefixed ``WORKSHOP_REDIS_PREFIX``).
    Unset: ``redis`` if ``REDIS_URL`` is set, else ``memory``."""
    redis_url = environ.get(REDIS_URL_ENV, "").strip()
    choice = environ.get(REPLAY_STORE_ENV, "").strip().lower() or ("redis" if redis_url else "memory")
    if choice == "memory":
        return None
    if choice == "database":
        url = environ.get(DATABASE_URL_ENV)
        if (url or "").strip().lower() in MEMORY_URLS:
            raise ValueError(f"{REPLAY_STORE_ENV}=database needs a database in {DATABASE_URL_ENV}, not memory")
        return DatabaseReplayStore(url, ttl_s=ttl_s)
    if choice != "redis":
        raise ValueError(f"{REPLAY_STORE_ENV} must be memory, database or redis, not {choice!r}")
    if not redis_url:
        raise ValueError(f"{REPLAY_STORE_ENV}=redis needs {REDIS_URL_ENV} (e.g. redis://127.0.0.1:6379/0)")
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"{REDIS_URL_ENV} must be a redis://, rediss:// or unix:// URL, "
                         f"not {redact_url(redis_url)!r}")
    from .replay_redis import DEFAULT_PREFIX, RedisReplayStore  # needs redis (redis-py)

    prefix = environ.get(REDIS_PREFIX_ENV, "").strip() or DEFAULT_PREFIX
    return RedisReplayStore(redis_url, ttl_s=ttl_s, prefix=prefix)
