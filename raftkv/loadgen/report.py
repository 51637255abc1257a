"""Showing a result: a plain-text block for people, and an optional PNG of the timeline.

The PNG needs matplotlib, an optional extra: ``write_png`` returns False when it is missing
instead of failing the run.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from raftkv.loadgen.stats import LoadResult


def describe_result(result: LoadResult) -> str:
    """A few aligned lines: throughput, latency percentiles, per-operation split, errors."""
    lat = result.latency
    lines = [
        f"{result.target}: {result.describe}",
        f"  throughput  {result.throughput_per_s:,.0f} ops/s  ({result.ops:,} ops in "
        f"{result.measured_s:.1f}s)",
        f"  latency ms  p50 {lat.p50_ms:.2f}  p90 {lat.p90_ms:.2f}  p99 {lat.p99_ms:.2f}  "
        f"p99.9 {lat.p999_ms:.2f}  max {lat.max_ms:.2f}",
    ]
    if len(result.by_op) > 1:
        for op, summary in result.by_op.items():
            lines.append(
                f"  {op:<10}  {summary.count:,} ops  p50 {summary.p50_ms:.2f}  "
                f"p99 {summary.p99_ms:.2f}"
            )
    errors = ", ".join(f"{code} {count}" for code, count in sorted(result.errors.items()))
    lines.append(f"  errors      {errors or 'none'}")
    return "\n".join(lines)


def write_png(result: LoadResult, path: Path) -> bool:
    """Throughput and latency per second; False if matplotlib is not installed."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return False
    seconds = [p.t_s for p in result.timeline]
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
    top.plot(seconds, [p.ops for p in result.timeline], label="ok ops/s")
    top.plot(seconds, [p.errors for p in result.timeline], label="errors/s")
    top.set_ylabel("ops/s")
    top.legend(loc="lower right")
    top.set_title(f"{result.target}: {result.describe}")
    bottom.plot(seconds, [p.p50_ms for p in result.timeline], label="p50")
    bottom.plot(seconds, [p.p99_ms for p in result.timeline], label="p99")
    bottom.set_ylabel("latency ms")
    bottom.set_xlabel("second of the measured window")
    bottom.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
