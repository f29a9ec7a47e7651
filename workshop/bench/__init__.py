"""The workshop's streaming benchmark: ``make bench`` (``python -m workshop.bench``).

Four ways to stream the same answer from the same offline emulator, side by side, at zero and
at realistic pacing, at 1, 10 and 100 concurrent streams (runner.py says how). Results go to
``results/bench/`` (JSON and PNG plots); notebook 11 reads them.

In code::

    from workshop.bench import QUICK, run_benchmark, write_results
    results = await run_benchmark(QUICK)
    write_results(results, "/tmp/bench")

``python -m workshop.bench.follow --out FILE`` (follow.py) measures something else: how late a
follower in another server process gets each frame of a live turn, per replay store (memory,
SQLite, PostgreSQL, Redis).
"""

from .runner import (
    CONFIGS,
    FULL,
    LABELS,
    QUICK,
    RESULTS_DIR,
    BenchConfig,
    goals,
    load_results,
    ratios,
    run_benchmark,
    write_results,
)
from .stats import percentile, summary

__all__ = [
    "CONFIGS",
    "FULL",
    "LABELS",
    "QUICK",
    "RESULTS_DIR",
    "BenchConfig",
    "goals",
    "load_results",
    "percentile",
    "ratios",
    "run_benchmark",
    "summary",
    "write_results",
]
