"""``python -m workshop.bench.versus``: the reference endpoint against ADK's ``/run_sse``, head to
head, as a team choosing between them would measure it.

Same agent, same emulator at zero pacing, "Count to 49" (50 chunks of one number), a fresh
session per turn; sessions in memory, then in SQLite, on both sides. Per storage: ``turns``
turns in a row through each server (alternating which goes first, so drift hits both), then
``concurrent`` turns at once through each, ``rounds`` times. Reported as medians and the ratio
reference / ``/run_sse``: time to first event, time to the end of the stream, and the wall time of
the concurrent batch. Below 1.0 the reference is faster. Next to them, each server process's CPU
time per turn (session creation included), over all the turns in a row: steadier than wall time
on a busy machine (the mean, not a median: the kernel counts CPU time in ticks of 10 ms).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..gemini_emulator import start_emulator
from .runner import RESULTS_DIR, _Children, _cpu_seconds
from .worker import STORAGE_ENV

SIDES = ("reference", "run_sse")
METRICS = ("first_event_ms", "total_ms", "concurrent_wall_ms")
CPU_METRICS = ("server_cpu_ms_per_turn", "server_cpu_ms_per_concurrent_turn")


@dataclass
class VersusConfig:
    storages: tuple[str, ...] = ("memory", "sqlite")
    turns: int = 30
    concurrent: int = 10
    rounds: int = 3
    count_to: int = 49  # 50 chunks
    warmup: int = 3


FULL = VersusConfig()
QUICK = VersusConfig(turns=4, concurrent=3, rounds=1, count_to=9, warmup=1)


@dataclass
class _Samples:
    values: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {side: {m: [] for m in METRICS + CPU_METRICS} for side in SIDES})

    def add_stream(self, side: str, stream: dict[str, Any]) -> None:
        self.values[side]["first_event_ms"].append((stream["first_event"] - stream["started"]) * 1000)
        self.values[side]["total_ms"].append((stream["ended"] - stream["started"]) * 1000)


def _measure(children: _Children, cfg: VersusConfig, tag: str,
             progress: Callable[[str], None] | None) -> dict[str, Any]:
    samples = _Samples()

    def batch(side: str, n: int, prefix: str) -> dict[str, Any]:
        pid = children.servers[side].pid
        cpu0 = _cpu_seconds(pid)
        reply = children.ask(cmd="batch", config=side, n=n, count_to=cfg.count_to, prefix=prefix)
        reply["server_cpu_ms"] = (_cpu_seconds(pid) - cpu0) * 1000
        return reply

    for i in range(cfg.warmup):  # imports, connections, first-call caches: not measured
        for side in SIDES:
            batch(side, 1, f"warm{i}")
    for i in range(cfg.turns):
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            reply = batch(side, 1, f"{tag}-seq{i}")
            samples.add_stream(side, reply["streams"][0])
            samples.values[side]["server_cpu_ms_per_turn"].append(reply["server_cpu_ms"])
    for r in range(cfg.rounds):
        for side in SIDES if r % 2 == 0 else SIDES[::-1]:
            reply = batch(side, cfg.concurrent, f"{tag}-con{r}")
            samples.values[side]["concurrent_wall_ms"].append(reply["wall"] * 1000)
            samples.values[side]["server_cpu_ms_per_concurrent_turn"].append(reply["server_cpu_ms"] / cfg.concurrent)
    if progress:
        progress(f"  {tag}: {cfg.turns} turns in a row and {cfg.rounds} x {cfg.concurrent} at once, per side")
    medians = {side: {m: (statistics.fmean if m in CPU_METRICS else statistics.median)(v)
                      for m, v in samples.values[side].items()} for side in SIDES}
    ratios = {m: medians["reference"][m] / medians["run_sse"][m] if medians["run_sse"][m] else float("nan")
              for m in METRICS + CPU_METRICS}
    return {"medians": medians, "ratios": ratios, "samples": samples.values}


def run_versus(cfg: VersusConfig = FULL, *,
               progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    results: dict[str, Any] = {"config": cfg.__dict__ | {"storages": list(cfg.storages)}, "storages": {},
                               "loadavg_before": os.getloadavg(), "cpus": os.cpu_count()}
    with start_emulator(first_token_s=0, chunk_s=0) as emulator:
        emulator.set_pacing(first_token_s=0, chunk_s=0, words_per_chunk=1)
        for storage in cfg.storages:
            children = _Children(emulator, SIDES)
            children.env[STORAGE_ENV] = storage
            try:
                children.start()
                results["storages"][storage] = _measure(children, cfg, storage, progress)
            finally:
                children.stop()
    results["loadavg_after"] = os.getloadavg()
    return results


def format_versus(results: dict[str, Any]) -> str:
    lines = [f"{'sessions':<9}{'metric':<20}{'reference':>11}{'/run_sse':>11}{'ratio':>8}"]
    for storage, r in results["storages"].items():
        for m in METRICS + tuple(c for c in CPU_METRICS if c in r["ratios"]):
            lines.append(f"{storage:<9}{m:<20}{r['medians']['reference'][m]:>9.1f}ms"
                         f"{r['medians']['run_sse'][m]:>9.1f}ms{r['ratios'][m]:>8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workshop.bench.versus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small run, for tests")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "versus.json")
    parser.add_argument("--storage", choices=FULL.storages, action="append",
                        help="only these session storages (default: all)")
    args = parser.parse_args(argv)
    t0 = time.time()
    cfg = QUICK if args.quick else FULL
    if args.storage:
        cfg = dataclasses.replace(cfg, storages=tuple(args.storage))
    results = run_versus(cfg)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(format_versus(results))
    print(f"load average (1 min) before {results['loadavg_before'][0]:.1f}, after "
          f"{results['loadavg_after'][0]:.1f}, on {results['cpus']} CPUs")
    print(f"\nwrote {args.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
