"""The timing loops of the micro-benchmarks (emitters, lstm_loop, matmul_rate, profile_step, unrolled)."""

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


def taking_turns(calls: dict, calls_per_timing: int, repeats: int) -> dict:
    """Seconds per call of each of `calls` (name -> call), timed in turns (one timing of each, `repeats` times over),
    so that a shared machine's slow spells fall on all of them: the median of each one's timings."""
    timings = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            timings[name].append(median_seconds(call, calls_per_timing, 1))
    return {name: statistics.median(seconds) for name, seconds in timings.items()}
