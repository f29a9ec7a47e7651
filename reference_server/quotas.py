"""Per-user limits: turns per window, streams open at once, tokens per turn and per window.

Each is off until configured (the right numbers depend on your model quota and your users):

====================================  ===================================================
Environment variable                  Limit
====================================  ===================================================
``WORKSHOP_TURNS_PER_MINUTE``         new messages (turns) a user may start per minute,
                                      over a moving window (the ``limits`` library)
``WORKSHOP_MAX_STREAMS_PER_USER``     responses streaming to one user at once (new
                                      messages, resumes, /api/chat), all tabs together
``WORKSHOP_TOKENS_PER_HOUR``          model tokens (prompt, answer and thoughts, from the
                                      usage metadata) a user may spend per hour; counted
                                      after each turn, checked before the next
``WORKSHOP_MAX_TOKENS_PER_TURN``      output tokens (answer and thoughts) of one turn: a
                                      turn that reaches it is stopped mid-stream
``REDIS_URL``                         set: the counts are shared by every process on that
                                      Redis (else each process counts its own)
====================================  ===================================================

A refusal comes before the stream, before anything is stored: 429 with the usual JSON error
(``TOO_MANY_TURNS``, ``TOO_MANY_STREAMS``, ``TOKEN_QUOTA_EXCEEDED``) and ``Retry-After`` in
seconds (when the window frees a turn; a fixed few seconds for streams, which end when they
end). A turn stopped by its token budget ends with ``event: error`` ``TURN_TOKEN_LIMIT``.

Streams on Redis: one sorted set per user, a member per open stream scored with its expiry,
pushed forward every ``stream_ttl_s / 3`` while the stream is open; so the streams of a
worker that crashed stop counting within ``stream_ttl_s``. A Redis that fails (down, or slower
than ``REDIS_TIMEOUT_S``) lets requests through, with a warning in the log: an outage of the
limits' store does not take the chat down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException

from .errors import api_error
from .observability import Observability

logger = logging.getLogger("reference_server")

TURNS_PER_MINUTE_ENV = "WORKSHOP_TURNS_PER_MINUTE"
MAX_STREAMS_ENV = "WORKSHOP_MAX_STREAMS_PER_USER"
TOKENS_PER_HOUR_ENV = "WORKSHOP_TOKENS_PER_HOUR"
MAX_TOKENS_PER_TURN_ENV = "WORKSHOP_MAX_TOKENS_PER_TURN"
REDIS_URL_ENV = "REDIS_URL"

STREAM_RETRY_AFTER_S = 2  # a stream frees its slot when it ends: no window to compute
STREAM_TTL_S = 60.0  # Redis: a stream not refreshed for this long (its worker died) stops counting
REDIS_TIMEOUT_S = 2.0  # an unreachable Redis must not hold requests: past this, let them through
TURN_TOKEN_LIMIT = "TURN_TOKEN_LIMIT"
TURN_TOKEN_LIMIT_MESSAGE = ("The answer was stopped: it reached the limit of tokens for one message. "
                            "Ask for a shorter answer, or split the question.")
KEY_PREFIX = "workshop:quota"


def _positive_int(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw or raw.lower() in ("off", "0"):
        return None
    if not raw.isdigit():
        raise ValueError(f"{name} must be a positive integer (unset or 0: no limit)")
    return int(raw)


@dataclass
class Quotas:
    """The limits (``None``: none). ``turn_rate`` and ``token_rate`` are in the ``limits``
    library's notation: ``"20/minute"``, ``"5/second;100/hour"`` (each must hold)."""

    turn_rate: str | None = None
    max_streams: int | None = None
    token_rate: str | None = None
    max_tokens_per_turn: int | None = None
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    stream_ttl_s: float = STREAM_TTL_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Quotas:
        turns = _positive_int(environ, TURNS_PER_MINUTE_ENV)
        tokens = _positive_int(environ, TOKENS_PER_HOUR_ENV)
        return cls(turn_rate=f"{turns}/minute" if turns else None,
                   max_streams=_positive_int(environ, MAX_STREAMS_ENV),
                   token_rate=f"{tokens}/hour" if tokens else None,
                   max_tokens_per_turn=_positive_int(environ, MAX_TOKENS_PER_TURN_ENV),
                   redis_url=environ.get(REDIS_URL_ENV, "").strip() or None)


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def _refusal(code: str, message: str, retry_after_s: int):
    return api_error(429, code, message, headers={"Retry-After": str(retry_after_s)})


# Redis: take a stream slot if the user has fewer than ARGV[1] live ones (atomic, on Redis's
# clock, so workers with skewed clocks agree); returns the slots now held, or -1 when full.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return -1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return redis.call('ZCARD', KEYS[1])
"""
# Push the expiry of this worker's open streams forward (only members still there: XX).
_REFRESH = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', expiry, ARGV[i + 1])
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[1]) * 1000))
end
return #KEYS
"""


class QuotaGuard:
    """The limits at work in one app: ``create_app`` makes it (``app.state.quotas``)."""

    def __init__(self, quotas: Quotas, observability: Observability | None = None) -> None:
        self.quotas = quotas
        self.observability = observability or Observability()
        self._redis: Any = None  # redis.asyncio client, made on first use (in the server's loop)
        self._limiter: Any = None
        self._token_limiter: Any = None
        self._turn_items = self._parse(quotas.turn_rate)
        self._token_items = self._parse(quotas.token_rate)
        self._streams: dict[str, int] = {}  # in memory: user -> open streams
        self._held: dict[str, str] = {}  # Redis: stream member -> its user's key
        self._refresher: asyncio.Task | None = None

    @staticmethod
    def _parse(rate: str | None) -> list:
        if not rate:
            return []
        from limits import parse_many

        return parse_many(rate)

    @property
    def limits_tokens(self) -> bool:
        return bool(self._token_items) or self.quotas.max_tokens_per_turn is not None

    def _storage(self):
        from limits.storage import storage_from_string

        url = self.quotas.redis_url
        if url is None:
            return storage_from_string("async+memory://")
        if url.startswith("unix://"):  # redis-py's spelling; the limits library's is redis+unix
            url = "redis+" + url
        # redis-py's asyncio client (the `redis` package), not coredis: the library's default.
        return storage_from_string(f"async+{url}", implementation="redispy",
                                   key_prefix=f"{KEY_PREFIX}:limits",
                                   socket_timeout=REDIS_TIMEOUT_S,
                                   socket_connect_timeout=REDIS_TIMEOUT_S)

    def _limiters(self):
        if self._limiter is None:
            from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

            storage = self._storage()
            self._limiter = MovingWindowRateLimiter(storage)
            # Tokens are counted after the turn, whatever the count: a fixed window's counter
            # always adds (a moving window refuses, and so forgets, a cost over what is left).
            self._token_limiter = FixedWindowRateLimiter(storage)
        return self._limiter, self._token_limiter

    def _refused(self, reason: str) -> None:
        if self.observability.metrics:
            self.observability.metrics.refusals.labels(reason).inc()

    # -- turns ------------------------------------------------------------------------------
    async def admit_turn(self, user: str) -> None:
        """Count a new turn of ``user``, or raise the 429 (nothing counted then). Called just
        before the turn starts: the session is not touched by a refused message."""
        if not self._turn_items and not self._token_items:
            return
        try:
            await self._admit_turn(user)
        except HTTPException:
            raise
        except Exception:
            logger.warning("quotas: the limits' store failed: turn let through", exc_info=True)

    async def _admit_turn(self, user: str) -> None:
        limiter, token_limiter = self._limiters()
        who = _key(user)
        for item in self._token_items:  # checked, not spent: the turn's tokens are added after it
            if not await token_limiter.test(item, "tokens", who):
                stats = await token_limiter.get_window_stats(item, "tokens", who)
                wait = _retry_after(stats.reset_time - time.time())
                self._refused("tokens")
                raise _refusal("TOKEN_QUOTA_EXCEEDED",
                               f"You have used your model tokens for this {item.GRANULARITY.name}. "
                               f"Try again in {wait} s.", wait)
        # Several windows ("5/second;100/hour"): all checked before any counts the turn, so a
        # refused turn is counted in none (unless another turn of the user raced it).
        checks = [limiter.test] if len(self._turn_items) > 1 else []
        for check in [*checks, limiter.hit]:
            for item in self._turn_items:
                if not await check(item, "turns", who):
                    stats = await limiter.get_window_stats(item, "turns", who)
                    wait = _retry_after(stats.reset_time - time.time())
                    self._refused("turns")
                    raise _refusal("TOO_MANY_TURNS",
                                   f"You sent {item.amount} message{'s' * (item.amount > 1)} in the last "
                                   f"{_window_words(item)}: that is the limit. Try again in {wait} s.",
                                   wait)

    def meter(self, user: str) -> TurnMeter | None:
        """What ``TurnManager`` counts a turn's tokens with (None: tokens are not limited)."""
        return TurnMeter(self, user) if self.limits_tokens else None

    async def spend_tokens(self, user: str, tokens: int) -> None:
        if tokens <= 0 or not self._token_items:
            return
        _, token_limiter = self._limiters()
        for item in self._token_items:
            await token_limiter.hit(item, "tokens", _key(user), cost=tokens)

    # -- streams ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def stream(self, user: str) -> AsyncIterator[Callable[[], Awaitable[None]] | None]:
        """Hold one of ``user``'s stream slots for the block (the whole response), or raise the
        429 at once. Yields a function that frees the slot before the block ends (None when
        streams are not limited)."""
        limit = self.quotas.max_streams
        if limit is None:
            yield None
            return
        try:
            release = await (self._take_shared(user, limit) if self.quotas.redis_url
                             else self._take_local(user, limit))
        except HTTPException:
            raise
        except Exception:
            logger.warning("quotas: the limits' store failed: stream let through", exc_info=True)
            release = _nothing_to_release
        released = False

        async def release_once() -> None:
            nonlocal released
            if not released:
                released = True
                with contextlib.suppress(Exception):  # Redis gone: the slot expires by itself
                    await asyncio.shield(release())

        try:
            yield release_once  # the caller may free the slot earlier (as its last frame goes)
        finally:
            await release_once()

    def _full(self, limit: int):
        self._refused("streams")
        return _refusal("TOO_MANY_STREAMS",
                        f"You already have {limit} answer{'s' if limit > 1 else ''} streaming, the "
                        f"most at once. Wait for one to end (or stop it), then try again in "
                        f"{STREAM_RETRY_AFTER_S} s.", STREAM_RETRY_AFTER_S)

    async def _take_local(self, user: str, limit: int):
        if self._streams.get(user, 0) >= limit:
            raise self._full(limit)
        self._streams[user] = self._streams.get(user, 0) + 1

        async def release() -> None:
            left = self._streams.get(user, 1) - 1
            if left > 0:
                self._streams[user] = left
            else:
                self._streams.pop(user, None)
        return release

    def _client(self):
        if self._redis is None:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(self.quotas.redis_url, socket_timeout=REDIS_TIMEOUT_S,
                                               socket_connect_timeout=REDIS_TIMEOUT_S)
            self._acquire = self._redis.register_script(_ACQUIRE)
            self._refresh = self._redis.register_script(_REFRESH)
        return self._redis

    async def _take_shared(self, user: str, limit: int):
        self._client()
        key, member = f"{KEY_PREFIX}:streams:{_key(user)}", secrets.token_hex(8)
        if await self._acquire(keys=[key], args=[limit, self.quotas.stream_ttl_s, member]) < 0:
            raise self._full(limit)
        self._held[member] = key
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._keep_fresh(), name="quota-streams")

        async def release() -> None:
            self._held.pop(member, None)
            await self._redis.zrem(key, member)
        return release

    async def _keep_fresh(self) -> None:
        """While this process holds streams: push their expiry forward, all in one call."""
        while self._held:
            await asyncio.sleep(self.quotas.stream_ttl_s / 3)
            held = dict(self._held)
            if not held:
                break
            try:
                await self._refresh(keys=list(held.values()),
                                    args=[self.quotas.stream_ttl_s, *held.keys()])
            except Exception:  # Redis hiccuped: try again at the next tick
                logger.warning("quotas: could not refresh the open streams", exc_info=True)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._redis is not None:
            await self._redis.aclose()
        if self._limiter is not None and self.quotas.redis_url:
            with contextlib.suppress(Exception):  # the limits library's own redis-py client
                await self._limiter.storage.bridge.storage.aclose()


def _key(user: str) -> str:
    """The user as the stores see them: a digest (a user id may be an email address, and
    could hold the library's separator "/")."""
    return hashlib.sha256(user.encode()).hexdigest()[:32]


async def _nothing_to_release() -> None:
    pass


def _window_words(item) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


class TurnMeter:
    """One turn's tokens, from its events' usage metadata. A model call's chunks carry growing
    counts (the last is the call's total), so each call (ADK's ``event.id``) keeps its latest;
    the turn is the sum over its calls (a tool loop makes several)."""

    def __init__(self, guard: QuotaGuard, user: str) -> None:
        self.guard = guard
        self.user = user
        self.output: dict[str, int] = {}  # answer and thoughts, per model call
        self.total: dict[str, int] = {}  # prompt, answer and thoughts, per model call

    def add(self, event) -> bool:
        """Count ``event``; True if the turn is now over its budget (stop it)."""
        usage = event.usage_metadata
        if usage is None:
            return False
        out = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
        self.output[event.id] = max(self.output.get(event.id, 0), out)
        self.total[event.id] = max(self.total.get(event.id, 0),
                                   usage.total_token_count or (usage.prompt_token_count or 0) + out)
        limit = self.guard.quotas.max_tokens_per_turn
        return limit is not None and sum(self.output.values()) > limit

    async def finish(self) -> None:
        """The turn is over: its tokens count against the user's window."""
        try:
            await self.guard.spend_tokens(self.user, sum(self.total.values()))
        except Exception:  # the store hiccuped: this turn goes uncounted, nothing worse
            logger.warning("quotas: could not count a turn's tokens", exc_info=True)
