"""How long a follower in another process waits for a frame of the PostgreSQL replay store.

This process appends a turn's frames (``DatabaseReplayStore.append``) every 20-50 ms; a
follower process reads them as the server's ``follow`` does (``read``, then ``wait``). The
extra delay of a frame is when the follower read it minus when its append committed (one
machine: one wall clock). ``--poll-only`` makes the follower poll every 0.1 s as before
``LISTEN``/``NOTIFY`` (issue 14); by default it is woken by ``NOTIFY`` (safety poll ``--poll``).

    WORKSHOP_TEST_DATABASE_URL=postgresql://... python -m workshop.bench.pg_follow [--poll-only]

tests/test_replay_pg_notify.py runs ``measure`` with few frames.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid

from .stats import summary


async def _follow(url: str, session_id: str, poll_s: float | None, poll_only: bool) -> None:
    """The follower process: prints ``ready``, then one JSON line per frame: id and time read."""
    from reference_server.persistence import DatabaseReplayStore

    store = DatabaseReplayStore(url, poll_s=0.1 if poll_only else poll_s)
    if poll_only:
        store.listener = None  # the store as it was: a read of the table every 0.1 s
    elif store.listener is not None:
        store.listener.start()
        while store.listener.connections == 0:  # LISTEN is in place before the first frame
            await asyncio.sleep(0.01)
    await store.read(session_id, 0)  # warm: the pool's connection opens before the first frame
    print("ready", flush=True)
    after = 0
    try:
        while True:
            tail = await store.read(session_id, after)
            now = time.time()
            for frame in tail.frames if tail else []:
                print(json.dumps({"id": frame.id, "t": now}), flush=True)
            if tail and tail.frames:
                after = tail.frames[-1].id
            if tail is None or tail.finished:
                return
            await store.wait(session_id, after, 30)
    finally:
        await store.close()


async def measure(url: str, frames: int = 300, interval_s: tuple[float, float] = (0.02, 0.05),
                  poll_s: float | None = None, poll_only: bool = False) -> dict:
    """Append ``frames`` frames (the last one ends the turn) with a follower in another
    process; the extra delays (ms) and the ids the follower got, in order."""
    from reference_server.persistence import DatabaseReplayStore
    from reference_server.replay import Frame

    store = DatabaseReplayStore(url)
    session_id = f"bench-{uuid.uuid4().hex}"
    assert await store.begin_turn(session_id, "t", owner_stale_s=60)
    args = [sys.executable, "-m", "workshop.bench.pg_follow", "--follow", session_id,
            *(["--poll", str(poll_s)] if poll_s is not None else []),
            *(["--poll-only"] if poll_only else [])]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "WORKSHOP_TEST_DATABASE_URL": url})
    try:
        assert (await asyncio.to_thread(child.stdout.readline)).strip() == "ready"
        committed: dict[int, float] = {}
        for i in range(1, frames + 1):
            await asyncio.sleep(random.uniform(*interval_s))
            kind = "done" if i == frames else "event"
            await store.append(session_id, "t", Frame(i, kind, json.dumps({"n": i})))
            committed[i] = time.time()
        out, _ = await asyncio.to_thread(child.communicate, timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
        await store.close()
    got = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    delays = [g["t"] - committed[g["id"]] for g in got]
    return {"ids": [g["id"] for g in got], "delay_ms": summary(delays, 1000.0),
            "poll_only": poll_only, "frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--poll", type=float, default=None, help="the follower's (safety) poll, s")
    parser.add_argument("--poll-only", action="store_true", help="poll every 0.1 s, no LISTEN")
    parser.add_argument("--follow", metavar="SESSION_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = os.environ["WORKSHOP_TEST_DATABASE_URL"]
    if args.follow:
        asyncio.run(_follow(url, args.follow, args.poll, args.poll_only))
        return
    result = asyncio.run(measure(url, args.frames, poll_s=args.poll, poll_only=args.poll_only))
    assert result["ids"] == list(range(1, args.frames + 1)), "a frame lost or repeated"
    print(json.dumps({k: v for k, v in result.items() if k != "ids"}, indent=1))


if __name__ == "__main__":
    main()
