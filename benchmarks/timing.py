"""The timing loop of the micro-benchmarks (emitters.py, lstm_loop.py, matmul_rate.py, profile_step.py, unrolled.py)."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(call: Callable[[], object], calls: int, repeats: int) -> float:
    """Seconds per call of `call`: the median over `repeats` timings of `calls` calls in a row. Warm it up first
    (tracing, compiling): the first call is timed like any other."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        timings.append((time.perf_counter() - start) / calls)
    return statistics.median(timings)
