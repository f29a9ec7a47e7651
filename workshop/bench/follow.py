"""``python -m workshop.bench.follow --out FILE``: how late a follower in another process gets
each frame of a live turn, per replay store.

A writer (this process) begins a turn and appends ``--frames`` frames, one every 20-50 ms
(seeded, the same gaps for every store), then ``done``; a follower reads the turn as
``TurnManager.follow`` does (``read`` after the last id, then ``wait`` up to 1 s) and notes when
each frame reaches it. The delay of a frame is that time minus the moment the writer called
``append`` (one wall clock: both run on this machine). Stores:

- ``memory``: ``InMemoryReplayStore``, the follower in the writer's process (the baseline: one
  process, woken by an ``asyncio.Event``);
- ``sqlite``: ``DatabaseReplayStore`` on a new SQLite file, the follower in a child process;
- ``postgresql``: ``DatabaseReplayStore`` on ``--database-url`` (default
  ``WORKSHOP_TEST_DATABASE_URL``; skipped without one), the follower in a child process;
- ``redis``: ``RedisReplayStore`` on ``--redis-url`` (default ``REDIS_URL``; else a throwaway
  ``redis-server``, workshop/servers/redis.py), the follower in a child process.

The stores are built only through their public constructors (``make_store``): a change inside a
store (PostgreSQL's ``LISTEN``/``NOTIFY`` in place of polling, say) is measured by running this
again. Prints p50/p99 per store and writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from .stats import summary

STORES = ("memory", "sqlite", "postgresql", "redis")
WAIT_S = 1.0  # TurnManager.follow's wait timeout (its poll_s)


def make_store(kind: str, url: str | None):
    """The replay store ``kind`` on ``url``, through its public constructor."""
    if kind == "memory":
        from reference_server.replay import InMemoryReplayStore
        return InMemoryReplayStore()
    if kind in ("sqlite", "postgresql"):
        from reference_server.persistence import DatabaseReplayStore
        return DatabaseReplayStore(url)
    if kind == "redis":
        from reference_server.replay_redis import RedisReplayStore
        return RedisReplayStore(url)
    raise ValueError(f"unknown store {kind!r}: one of {', '.join(STORES)}")


async def follow(store, session_id: str, ready=None) -> dict[int, float]:
    """Each frame id of the session's turn -> when it reached this follower (``time.time``)."""
    arrived: dict[int, float] = {}
    after = 0
    tail = await store.read(session_id, 0)  # warm: connections open before the first frame
    if ready is not None:
        ready()
    while True:
        tail = await store.read(session_id, after)
        now = time.time()
        for frame in tail.frames:
            arrived[frame.id] = now
        after = tail.frames[-1].id if tail.frames else after
        if tail.finished:
            return arrived
        await store.wait(session_id, after, WAIT_S)


async def _follower_main(kind: str, url: str | None, session_id: str) -> None:
    store = make_store(kind, url)
    try:
        arrived = await follow(store, session_id, ready=lambda: print("ready", flush=True))
    finally:
        await store.close()
    print(json.dumps(arrived), flush=True)


async def _write(store, session_id: str, turn_id: str, gaps: list[float],
                 append_s: list[float]) -> dict[int, float]:
    from reference_server.replay import Frame

    appended: dict[int, float] = {}
    for number, gap in enumerate(gaps, start=1):
        await asyncio.sleep(gap)
        last = number == len(gaps)
        frame = Frame(number, "done" if last else "event",
                      json.dumps({"done": True} if last else {"partial": True, "text": f"chunk {number} " * 4}))
        appended[number] = time.time()
        await store.append(session_id, turn_id, frame)
        append_s.append(time.time() - appended[number])
    return appended


async def measure(kind: str, url: str | None, gaps: list[float]) -> dict:
    """One store: the per-frame delays (ms) of a follower, in another process but for memory."""
    store = make_store(kind, url)
    session_id, turn_id = f"bench-{uuid.uuid4().hex}", uuid.uuid4().hex[:16]
    append_s: list[float] = []  # how long each append took the writer
    try:
        assert await store.begin_turn(session_id, turn_id, owner_stale_s=15)
        if kind == "memory":
            follower = asyncio.create_task(follow(store, session_id))
            await asyncio.sleep(0)
            appended = await _write(store, session_id, turn_id, gaps, append_s)
            arrived = await follower
        else:
            arrived, appended = await _in_child(store, kind, url, session_id, turn_id, gaps, append_s)
    finally:
        await store.close()
    delays = [arrived[i] - appended[i] for i in appended if i in arrived]
    return {"delay_ms": summary(delays, scale=1000), "append_ms": summary(append_s, scale=1000),
            "frames": len(appended),
            "missing": len(appended) - len(delays), "follower": "same process" if kind == "memory" else "child process"}


async def _in_child(store, kind, url, session_id, turn_id, gaps, append_s):
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workshop.bench.follow", "--follow", kind, url or "", session_id,
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 120)
        if line.strip() != b"ready":
            raise RuntimeError(f"{kind} follower did not start: {line!r}")
        appended = await _write(store, session_id, turn_id, gaps, append_s)
        out = await asyncio.wait_for(child.stdout.read(), 60)
    finally:
        if child.returncode is None:
            await asyncio.wait_for(child.wait(), 60)
    arrived = {int(k): v for k, v in json.loads(out).items()}
    return arrived, appended


def format_table(results: dict) -> str:
    lines = [f"{'store':<12} {'follower':<14} {'frames':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
             f" {'append p50 ms':>14}"]
    for kind, r in results["stores"].items():
        if "skipped" in r:
            lines.append(f"{kind:<12} skipped: {r['skipped']}")
            continue
        d = r["delay_ms"]
        lines.append(f"{kind:<12} {r['follower']:<14} {r['frames'] - r['missing']:>6} "
                     f"{d['median']:>8.1f} {d['p99']:>8.1f} {d['max']:>8.1f} {r['append_ms']['median']:>14.2f}")
    load = results["machine"]["load_before"]
    lines.append(f"{results['frames']} frames every {results['gap_ms'][0]}-{results['gap_ms'][1]} ms; "
                 f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {results['machine']['cpus']} CPUs")
    return "\n".join(lines)


async def run(stores: list[str], frames: int, gap_ms: tuple[float, float], database_url: str | None,
              redis_url: str | None, seed: int = 14) -> dict:
    from reference_server.persistence import redact_url

    rng = random.Random(seed)
    gaps = [rng.uniform(*gap_ms) / 1000 for _ in range(frames)]
    results = {"frames": frames, "gap_ms": list(gap_ms), "wait_s": WAIT_S,
               "machine": {"cpus": os.cpu_count(), "load_before": list(os.getloadavg())}, "stores": {}}
    redis_server = None
    with tempfile.TemporaryDirectory(prefix="follow-bench-") as tmp:
        try:
            for kind in stores:
                url = None
                if kind == "sqlite":
                    url = f"sqlite:///{Path(tmp) / 'follow.db'}"
                elif kind == "postgresql":
                    url = database_url
                    if not url:
                        results["stores"][kind] = {"skipped": "no --database-url (or WORKSHOP_TEST_DATABASE_URL)"}
                        continue
                elif kind == "redis":
                    url = redis_url
                    if not url:
                        from workshop.servers.redis import RedisServer, redis_binary
                        if redis_binary() is None:
                            results["stores"][kind] = {"skipped": "no --redis-url and no redis-server"}
                            continue
                        redis_server = RedisServer().start()
                        url = redis_server.url
                result = await measure(kind, url, gaps)
                result["url"] = redact_url(url) if url else None
                results["stores"][kind] = result
        finally:
            if redis_server is not None:
                redis_server.stop()
    results["machine"]["load_after"] = list(os.getloadavg())
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workshop.bench.follow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results here (JSON)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--gap-ms", type=float, nargs=2, default=(20.0, 50.0), metavar=("MIN", "MAX"))
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated, of: " + ", ".join(STORES))
    parser.add_argument("--database-url", default=os.environ.get("WORKSHOP_TEST_DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--follow", nargs=3, metavar=("STORE", "URL", "SESSION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.follow:  # the child: follow one turn, print when each frame came
        kind, url, session_id = args.follow
        asyncio.run(_follower_main(kind, url or None, session_id))
        return
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    for kind in stores:
        if kind not in STORES:
            parser.error(f"unknown store {kind!r}: one of {', '.join(STORES)}")
    results = asyncio.run(run(stores, args.frames, tuple(args.gap_ms), args.database_url, args.redis_url))
    print(format_table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
