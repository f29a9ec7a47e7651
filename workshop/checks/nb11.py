"""Checks for 11_benchmarking_streaming."""

from __future__ import annotations

import math
import random

from ..bench.stats import percentile
from ._report import fail, passed


def _cases() -> list[list[float]]:
    rng = random.Random(11)
    latencies = [round(rng.lognormvariate(0, 0.6), 3) for _ in range(250)]
    return [
        latencies,  # unsorted, a long tail, like real latencies
        [float(x) for x in range(1, 101)],  # 1..100: p99 is 99.01
        [3.0, 1.0, 2.0],  # unsorted, tiny
        [42.0],
    ]


def _in_given_order(samples: list[float], q: float) -> float:
    """The interpolated percentile computed without sorting: a typical slip."""
    rank = (len(samples) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(samples) - 1)
    return samples[low] + (samples[high] - samples[low]) * (rank - low)


def check_p99(p99) -> None:
    """Compare the learner's ``p99(samples)`` with linear interpolation (NumPy's default)."""
    for samples in _cases():
        given = list(samples)
        got = p99(given)
        expected = percentile(samples, 99)
        if given != samples:
            fail("p99 changed the list it was given (it sorted it in place?).",
                 "Work on a sorted copy: ordered = sorted(samples).")
        if not isinstance(got, (int, float)) or isinstance(got, bool) or math.isnan(got):
            fail(f"p99 returned {got!r}, not a number.", "Return the value as a float.")
        if math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12):
            continue
        ordered = sorted(samples)
        n = len(samples)
        if math.isclose(got, max(samples)):
            fail(f"p99 of {n} samples returned the maximum ({got}); expected {expected:.4f}.",
                 "p99 is the value 99 % of the way along the sorted samples: rank (n - 1) * 0.99, "
                 "interpolated between the two samples around it.")
        if any(math.isclose(got, ordered[i]) for i in {min(int(n * 0.99), n - 1), max(math.ceil(n * 0.99) - 1, 0)}):
            fail(f"p99 of {n} samples returned {got}, one of the samples; expected {expected:.4f}.",
                 "That is a nearest-rank percentile. Use rank = (n - 1) * 0.99 and interpolate: "
                 "low + (high - low) * (rank - floor(rank)).")
        if samples != ordered and math.isclose(got, _in_given_order(samples, 99)):
            fail(f"p99 returned {got}, read from the samples in arrival order; expected {expected:.4f}.",
                 "Sort the samples first (sorted(samples)).")
        fail(f"p99({samples[:5]}{'...' if n > 5 else ''}) returned {got}; expected {expected:.4f}.",
             "Sort, take rank = (len - 1) * 0.99, and interpolate between the samples at floor(rank) "
             "and floor(rank) + 1 (NumPy's default, numpy.percentile(samples, 99)).")
    passed("p99 matches linear interpolation between ranks on sorted, unsorted, tiny and long-tailed samples.")
