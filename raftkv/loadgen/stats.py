"""Recording what happened: latencies, errors by code, a per-second timeline, and summaries.

Rules: latencies are stored as float seconds in ``array('d')`` (8 bytes per operation; a run is
bounded by ``LoadSpec.max_ops``), summarised once at the end by nearest-rank percentiles.
The measured window is [end of warm-up, deadline]: operations that *finish* outside it are not
counted (except in ``completions_s`` and ``completed``), so the tail of operations still in
flight at the deadline neither inflates the window nor deflates the rate.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MIN_TIMELINE_FRACTION = 0.25
"""A final partial second shorter than this is left off the timeline (too few samples)."""
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySummary:
    """Latency of the counted operations, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @staticmethod
    def of(samples_s: array[float]) -> LatencySummary:
        if not samples_s:
            return LatencySummary(
                count=0, mean_ms=0.0, p50_ms=0.0, p90_ms=0.0, p99_ms=0.0, p999_ms=0.0, max_ms=0.0
            )
        ordered = sorted(samples_s)
        ranks = {name: _nearest_rank(ordered, q) * 1000 for name, q in PERCENTILES}
        return LatencySummary(
            count=len(ordered),
            mean_ms=sum(ordered) / len(ordered) * 1000,
            p50_ms=ranks["p50"],
            p90_ms=ranks["p90"],
            p99_ms=ranks["p99"],
            p999_ms=ranks["p999"],
            max_ms=ordered[-1] * 1000,
        )

    def to_json(self) -> dict[str, float]:
        return {
            "count": self.count,
            "mean_ms": round(self.mean_ms, 3),
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "p999_ms": round(self.p999_ms, 3),
            "max_ms": round(self.max_ms, 3),
        }


def _nearest_rank(ordered: list[float], q: float) -> float:
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelinePoint:
    """One second of the measured window; ``ops`` and ``errors`` are per second (a final partial
    second is scaled up)."""

    t_s: int
    ops: int
    errors: int
    p50_ms: float
    p99_ms: float


@dataclass(slots=True)
class _Second:
    ops: int = 0
    errors: int = 0
    samples: array[float] = field(default_factory=lambda: array("d"))


class Recorder:
    """Collects outcomes during a run. Times are ``time.perf_counter()`` values."""

    def __init__(self, *, started: float, warmup_s: float, record_completions: bool,
                 deadline: float = math.inf) -> None:
        self.started = started
        self.measure_from = started + warmup_s
        self.measure_until = deadline
        self._samples: dict[str, array[float]] = {}
        self._seconds: dict[int, _Second] = {}
        self.errors: Counter[str] = Counter()
        self.warmup_errors: Counter[str] = Counter()
        self.completions_s: array[float] = array("d")
        self._record_completions = record_completions
        self.issued = 0
        self.done = 0
        self.last_end = started

    def record_ok(self, op: str, begin: float, end: float) -> None:
        self.done += 1
        self.last_end = end
        if self._record_completions and op == "write":
            self.completions_s.append(end)
        if not self.measure_from <= end <= self.measure_until:
            return
        latency = end - begin
        samples = self._samples.get(op)
        if samples is None:
            samples = self._samples[op] = array("d")
        samples.append(latency)
        second = self._second(end)
        second.ops += 1
        second.samples.append(latency)

    def record_error(self, code: str, end: float) -> None:
        self.done += 1
        self.last_end = end
        if end < self.measure_from:
            self.warmup_errors[code] += 1
            return
        if end > self.measure_until:
            return
        self.errors[code] += 1
        self._second(end).errors += 1

    def _second(self, end: float) -> _Second:
        index = int(end - self.measure_from)
        second = self._seconds.get(index)
        if second is None:
            second = self._seconds[index] = _Second()
        return second

    def counted(self) -> int:
        return sum(len(s) for s in self._samples.values())

    def window_latency(self, last_s: float, now: float) -> LatencySummary:
        """Latency over the seconds that ended within ``last_s`` of ``now`` (for progress)."""
        newest = int(now - self.measure_from)
        merged: array[float] = array("d")
        for index in range(newest - max(1, math.ceil(last_s)), newest + 1):
            second = self._seconds.get(index)
            if second is not None:
                merged.extend(second.samples)
        return LatencySummary.of(merged)

    def finish(self, *, target: str, describe: str, workload: str, clients: int,
               ended: float) -> LoadResult:
        measured_s = max(1e-9, min(ended, self.measure_until) - self.measure_from)
        everything: array[float] = array("d")
        for samples in self._samples.values():
            everything.extend(samples)
        timeline = []
        for index, second in sorted(self._seconds.items()):
            covered = min(1.0, measured_s - index)  # the last second may be partial
            if covered < MIN_TIMELINE_FRACTION:
                continue
            summary = LatencySummary.of(second.samples)
            timeline.append(TimelinePoint(
                t_s=index,
                ops=round(second.ops / covered),
                errors=round(second.errors / covered),
                p50_ms=summary.p50_ms,
                p99_ms=summary.p99_ms,
            ))
        return LoadResult(
            target=target,
            describe=describe,
            workload=workload,
            clients=clients,
            measured_s=measured_s,
            ops=len(everything),
            throughput_per_s=len(everything) / measured_s,
            latency=LatencySummary.of(everything),
            by_op={op: LatencySummary.of(s) for op, s in sorted(self._samples.items())},
            errors=dict(self.errors),
            warmup_errors=dict(self.warmup_errors),
            timeline=timeline,
            completions_s=list(self.completions_s),
            completed=self.done,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    """The outcome of one run.

    ``completions_s``: the ``time.perf_counter()`` stamp of every successful write when the spec
    asked for it (for failover gaps); kept out of the JSON form.
    """

    target: str
    describe: str
    workload: str
    clients: int
    measured_s: float
    ops: int
    throughput_per_s: float
    latency: LatencySummary
    by_op: dict[str, LatencySummary]
    errors: dict[str, int]
    warmup_errors: dict[str, int]
    timeline: list[TimelinePoint]
    completions_s: list[float]
    completed: int = 0
    """Every operation that finished, warm-up and failures included."""

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "run": self.describe,
            "workload": self.workload,
            "clients": self.clients,
            "measured_s": round(self.measured_s, 3),
            "ops": self.ops,
            "completed": self.completed,
            "throughput_per_s": round(self.throughput_per_s, 1),
            "latency": self.latency.to_json(),
            "by_op": {op: s.to_json() for op, s in self.by_op.items()},
            "errors": self.errors,
            "warmup_errors": self.warmup_errors,
            "timeline": [
                {"t_s": p.t_s, "ops": p.ops, "errors": p.errors,
                 "p50_ms": round(p.p50_ms, 3), "p99_ms": round(p.p99_ms, 3)}
                for p in self.timeline
            ],
        }
