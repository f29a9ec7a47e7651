"""The replay buffer (``ReplayStore``, see replay.py) on Redis: live streams, the one-turn-per-
session 409 and ``/cancel`` across any number of server processes, with no polling.

Per session, two keys (``prefix`` + the session id in braces, so both land in one Redis Cluster
slot):

- ``<prefix>{<session>}:turn``, a hash: the latest turn's id, its ``Idempotency-Key``, ``seq``
  (a number that grows with every turn of the session), ``last`` (its last frame id),
  ``ended_at``, ``owner_at``, ``reader_at`` and ``cancel`` (the turn state of replay.py);
- ``<prefix>{<session>}:frames``, a Redis Stream: one entry per frame, with the id
  ``<seq>-<frame id>``, and ``<seq>-0`` when the turn begins.

Every write is one Lua script (atomic in Redis): ``begin_turn`` (the compare-and-set behind
the 409: a turn starts only if the latest one ended or its owner stopped checking in),
``append`` (only to the session's running turn, ids in order), ``mark`` and the owner's
check-in. A follower in any process waits with ``XREAD BLOCK`` on the stream: Redis wakes it
when the next frame (or the next turn) is added; a follower in the process that writes the
turn is woken by that process's append, as in memory. Each follower waiting on Redis holds one
connection of the pool while it waits. A cancel asked on another process is also published on
``<prefix>cancels``; the owner's watcher (turns.py) is subscribed, so it stops the turn at once,
and the process that asked waits for the terminal frame with ``XREAD BLOCK`` too: no polling.

Expiry is Redis's: a turn's keys expire ``ttl_s`` after its terminal frame, and ``idle_s``
(1 h) after the last write or check-in of a turn that never ended (its process died and
no reader sealed it), so ``purge`` has nothing to do. Times (``owner_at``...) come from this
process's wall clock, as in the database store: the servers' clocks must agree (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from .replay import EVENT, Frame, ReplayStore, Tail, TurnState

DEFAULT_PREFIX = "adk-sse:"
BEGIN = "begin"  # the kind of a turn's first stream entry (frame id 0): wakes the old turn's followers

# KEYS: turn hash, frames stream. ARGV: turn_id, key, has_key, now, owner_stale_s, idle_ms.
_BEGIN = """
local state = redis.call('HMGET', KEYS[1], 'ended_at', 'owner_at', 'seq')
if not state[1] and state[2] and tonumber(state[2]) >= tonumber(ARGV[4]) - tonumber(ARGV[5]) then
  return 0
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = string.format('%d', math.max((tonumber(state[3]) or 0) + 1, now_ms))
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'turn_id', ARGV[1], 'seq', seq, 'last', '0', 'owner_at', ARGV[4])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'key', ARGV[2]) end
redis.call('XADD', KEYS[2], seq .. '-0', 'k', 'begin')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
"""

# KEYS: turn hash, frames stream. ARGV: turn_id, frame_id, kind, data, code, has_code,
# terminal, now, ttl_ms, idle_ms. 1: added; 0: not the running turn; -1: out of order.
_APPEND = """
local state = redis.call('HMGET', KEYS[1], 'turn_id', 'ended_at', 'last', 'seq')
if state[1] ~= ARGV[1] or state[2] then return 0 end
if tonumber(ARGV[2]) ~= tonumber(state[3]) + 1 then return -1 end
if ARGV[6] == '1' then
  redis.call('XADD', KEYS[2], state[4] .. '-' .. ARGV[2], 'k', ARGV[3], 'd', ARGV[4], 'c', ARGV[5])
else
  redis.call('XADD', KEYS[2], state[4] .. '-' .. ARGV[2], 'k', ARGV[3], 'd', ARGV[4])
end
redis.call('HSET', KEYS[1], 'last', ARGV[2])
local expire = ARGV[10]
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[1], 'ended_at', ARGV[8])
  expire = ARGV[9]
end
redis.call('PEXPIRE', KEYS[1], expire)
redis.call('PEXPIRE', KEYS[2], expire)
return 1
"""

# KEYS: turn hash, frames stream. ARGV: after. The turn and its entries after frame `after`.
_READ = """
local state = redis.call('HMGET', KEYS[1], 'turn_id', 'ended_at', 'key', 'seq')
if not state[1] then return false end
local start = state[4] .. '-' .. string.format('%d', math.max(tonumber(ARGV[1]), 0) + 1)
return {state[1], state[2] and 1 or 0, state[3], redis.call('XRANGE', KEYS[2], start, '+')}
"""

# KEYS: turn hash. ARGV: turn_id, reader_at ('' : no), cancel ('1': yes), cancel channel,
# session id. A cancel is published too: the owner's watcher wakes at once (cancel_asked).
_MARK = """
local state = redis.call('HMGET', KEYS[1], 'turn_id', 'ended_at')
if state[1] ~= ARGV[1] or state[2] then return 0 end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'reader_at', ARGV[2]) end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return 1
"""

# KEYS: turn hash, frames stream. ARGV: beat ('1'), now, idle_ms. 1: a cancel was asked.
_CHECKIN = """
local state = redis.call('HMGET', KEYS[1], 'turn_id', 'ended_at', 'cancel')
if not state[1] or state[2] then return 0 end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'owner_at', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
if state[3] == '1' then return 1 end
return 0
"""


@dataclass
class _Writing:
    """A running turn this process appends to: its followers here wait for ``changed``."""

    turn_id: str
    last: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class RedisReplayStore(ReplayStore):
    """The replay buffer and the turn state on Redis (``url``: ``redis://host:6379/0``,
    ``rediss://`` for TLS), under keys that start with ``prefix``. See the module docstring."""

    shared = True
    pushes_cancels = True

    def __init__(self, url: str, ttl_s: float = 300.0, *, prefix: str = DEFAULT_PREFIX,
                 idle_s: float = 3600.0, clock=None, **client_kwargs) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self.prefix = prefix
        self._clock = clock or time.time  # wall clock: processes compare each other's times
        client_kwargs.setdefault("socket_connect_timeout", 5)
        # No socket timeout: a follower's XREAD BLOCK holds its connection for up to its timeout.
        self.redis = aioredis.Redis.from_url(url, decode_responses=True, **client_kwargs)
        self._begin = self.redis.register_script(_BEGIN)
        self._append = self.redis.register_script(_APPEND)
        self._read = self.redis.register_script(_READ)
        self._mark = self.redis.register_script(_MARK)
        self._checkin = self.redis.register_script(_CHECKIN)
        self._cancels = f"{prefix}cancels"  # the channel mark(cancel=True) publishes on
        self._writing: dict[str, _Writing] = {}  # running turns this process appends to
        self._pubsub: aioredis.client.PubSub | None = None

    def _keys(self, session_id: str) -> list[str]:
        base = f"{self.prefix}{{{session_id}}}"
        return [f"{base}:turn", f"{base}:frames"]

    @staticmethod
    def _ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))

    async def begin_turn(self, session_id: str, turn_id: str, *, owner_stale_s: float,
                         key: str | None = None) -> bool:
        started = await self._begin(keys=self._keys(session_id), args=[
            turn_id, key or "", "1" if key is not None else "0", repr(self._clock()),
            repr(owner_stale_s), self._ms(self.idle_s)])
        if started != 1:
            return False
        self._stop_writing(session_id)  # wake this process's followers of the replaced turn
        self._writing[session_id] = _Writing(turn_id)
        return True

    def _stop_writing(self, session_id: str) -> None:
        writing = self._writing.pop(session_id, None)
        if writing is not None:
            writing.changed.set()

    async def append(self, session_id: str, turn_id: str, frame: Frame) -> None:
        added = await self._append(keys=self._keys(session_id), args=[
            turn_id, frame.id, frame.kind, frame.data, frame.code or "",
            "1" if frame.code is not None else "0", "1" if frame.terminal else "0",
            repr(self._clock()), self._ms(self.ttl_s), self._ms(self.idle_s)])
        if added == -1:
            raise ValueError(f"frame id {frame.id} out of order in turn {turn_id}")
        writing = self._writing.get(session_id)
        if writing is None or writing.turn_id != turn_id:
            return
        if added != 1 or frame.terminal:  # replaced, or ended: followers here read Redis again
            self._stop_writing(session_id)
            return
        writing.last = frame.id
        writing.changed.set()
        writing.changed = asyncio.Event()

    async def read(self, session_id: str, after: int) -> Tail | None:
        found = await self._read(keys=self._keys(session_id), args=[after])
        if not found:
            return None
        turn_id, ended, key, entries = found
        frames = []
        for entry_id, flat in entries:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            frames.append(Frame(int(entry_id.rpartition("-")[2]), fields["k"], fields["d"], fields.get("c")))
        return Tail(turn_id, frames, bool(ended), key)

    async def wait(self, session_id: str, after: int, timeout: float) -> None:
        """A turn this process writes, read up to its last frame: wait for its next append
        here. Otherwise return at once if the stream's last entry is not frame ``after`` of a
        running turn (a newer frame, the terminal one, another turn, or no turn); else
        ``XREAD BLOCK`` from that entry: any entry added after it (the next frame, or the next
        turn's start) wakes this call, whenever it is added, even between these two commands."""
        if timeout <= 0:
            return
        writing = self._writing.get(session_id)
        if writing is not None and writing.last == after:  # this process writes the turn and
            with contextlib.suppress(TimeoutError):      # the follower has it all: our append
                async with asyncio.timeout(timeout):     # wakes it, no Redis
                    await writing.changed.wait()
            return
        frames_key = self._keys(session_id)[1]
        last = await self.redis.xrevrange(frames_key, count=1)
        if not last:
            return
        entry_id, fields = last[0]
        if int(entry_id.rpartition("-")[2]) != after or fields.get("k") not in (EVENT, BEGIN):
            return
        await self.redis.xread({frames_key: entry_id}, count=1, block=self._ms(timeout))

    async def purge(self) -> int:
        return 0  # Redis expires the keys itself (PEXPIRE)

    async def turn_state(self, session_id: str) -> TurnState | None:
        turn_id, ended_at, owner_at, reader_at, cancel = await self.redis.hmget(
            self._keys(session_id)[0], ["turn_id", "ended_at", "owner_at", "reader_at", "cancel"])
        if turn_id is None:
            return None
        now = self._clock()
        return TurnState(turn_id, ended_at is not None, now - float(owner_at or 0.0),
                         None if reader_at is None else now - float(reader_at), cancel == "1")

    async def owner_alive(self, session_ids: list[str], beat: bool) -> set[str]:
        if not session_ids:
            return set()
        now, idle_ms = repr(self._clock()), self._ms(self.idle_s)
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip
            for sid in session_ids:
                await self._checkin(keys=self._keys(sid), args=["1" if beat else "0", now, idle_ms],
                                    client=pipe)
            asked = await pipe.execute()
        return {sid for sid, cancel in zip(session_ids, asked, strict=True) if cancel == 1}

    async def mark(self, session_id: str, turn_id: str, *, reader: bool = False,
                   cancel: bool = False) -> None:
        if reader or cancel:
            await self._mark(keys=self._keys(session_id)[:1], args=[
                turn_id, repr(self._clock()) if reader else "", "1" if cancel else "",
                self._cancels, session_id])

    async def cancel_asked(self, session_ids: list[str], timeout: float) -> None:
        """Return when a cancel is published (by ``mark``, on any process) or after ``timeout``.
        Any session's cancel wakes every owner: ``owner_alive`` then tells which are its own (a
        turn started meanwhile is not missed). One subscribed connection per store."""
        if self._pubsub is None:
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            await self._pubsub.subscribe(self._cancels)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            if await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining):
                return

    async def close(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        await self.redis.aclose()
