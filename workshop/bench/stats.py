"""Small statistics for the benchmark: percentiles and summaries of samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks (NumPy's default)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """``n``, median, p90, p99, max and mean of ``samples`` (each value times ``scale``)."""
    values = [s * scale for s in samples]
    if not values:
        return {"n": 0, "median": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan,
                "mean": math.nan}
    return {
        "n": len(values),
        "median": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
    }
