"""Timing shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time


def median_time(fn, repeat: int) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls, after one warm-up call
    (page faults, caches)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
