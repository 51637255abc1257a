"""Linearizability checker for the key-value register: the API, per key, and its reports.

Rules kept here:
- The register model is per key (P-compositionality): the history is partitioned by key and each
  key is searched alone (``search.Search``); the overall verdict is the worst one.
- ``fail`` ops and unknown gets are dropped before the search (they did not happen / observe
  nothing).
- On a violation the report carries the longest linearizable prefix found, the definite op that
  could not follow it, and the window of ops around it, ready for ``render``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .history import History, Op, OpKind, Outcome
from .search import Budget, Search, Verdict

__all__ = ["Budget", "CheckResult", "KeyReport", "Verdict", "check_history", "check_key"]


@dataclass(frozen=True, slots=True)
class KeyReport:
    """The verdict for one key and, on a violation, where it went wrong."""

    key: str
    verdict: Verdict
    ops_checked: int
    steps: int
    elapsed_s: float
    reason: str
    # Longest linearizable prefix found, in linearization order (definite and unknown ops).
    linearized: tuple[Op, ...] = ()
    # The definite op that could not be placed after that prefix (violation only).
    failed_op: Op | None = None
    # Ops of this key around the failure, by invocation time (violation only).
    window: tuple[Op, ...] = ()

    def describe(self) -> str:
        head = f"key {self.key!r}: {self.verdict.value} ({self.ops_checked} ops, "
        head += f"{self.steps} steps, {self.elapsed_s:.2f}s): {self.reason}"
        if self.verdict is not Verdict.VIOLATION:
            return head
        lines = [head, "  longest linearizable prefix (last ops, in linearization order):"]
        lines += [f"    {op.describe()}" for op in self.linearized[-8:]]
        if self.failed_op is not None:
            lines.append(f"  could not place: {self.failed_op.describe()}")
        lines.append("  window:")
        lines += [f"    {_describe_timed(op)}" for op in self.window]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class CheckResult:
    verdict: Verdict
    keys: tuple[KeyReport, ...] = field(default_factory=tuple)

    @property
    def violations(self) -> tuple[KeyReport, ...]:
        return tuple(k for k in self.keys if k.verdict is Verdict.VIOLATION)

    def describe(self) -> str:
        lines = [f"linearizability: {self.verdict.value} ({len(self.keys)} keys)"]
        lines += [k.describe() for k in self.keys if k.verdict is not Verdict.OK]
        return "\n".join(lines)


def _describe_timed(op: Op) -> str:
    unknown = op.complete_s is None or op.outcome is Outcome.UNKNOWN
    end = "inf" if unknown else f"{op.complete_s:.6f}"
    return f"[{op.invoke_s:.6f} .. {end}] {op.describe()}"


def check_history(history: History, budget: Budget | None = None) -> CheckResult:
    """Check every key; the overall verdict is the worst of the keys' (violation > unknown > ok)."""
    reports = tuple(
        check_key(key, ops, budget) for key, ops in sorted(history.by_key().items())
    )
    verdicts = {r.verdict for r in reports}
    if Verdict.VIOLATION in verdicts:
        overall = Verdict.VIOLATION
    elif Verdict.UNKNOWN in verdicts:
        overall = Verdict.UNKNOWN
    else:
        overall = Verdict.OK
    return CheckResult(verdict=overall, keys=reports)


def relevant_ops(ops: Iterable[Op]) -> list[Op]:
    """The ops the search needs: no fail ops (never happened), no unknown gets (observe nothing)."""
    return [
        op
        for op in ops
        if op.outcome is not Outcome.FAIL
        and not (op.outcome is Outcome.UNKNOWN and op.kind is OpKind.GET)
    ]


def check_key(key: str, ops: Iterable[Op], budget: Budget | None = None) -> KeyReport:
    """Decide whether the ops on one key are linearizable w.r.t. the register model."""
    started = time.monotonic()
    kept = relevant_ops(op for op in ops if op.key == key)
    search = Search(kept, budget or Budget())
    verdict, reason = search.run()
    elapsed = time.monotonic() - started
    if verdict is not Verdict.VIOLATION:
        return KeyReport(
            key=key,
            verdict=verdict,
            ops_checked=len(kept),
            steps=search.steps,
            elapsed_s=elapsed,
            reason=reason,
        )
    prefix, failed = search.best_partial()
    return KeyReport(
        key=key,
        verdict=verdict,
        ops_checked=len(kept),
        steps=search.steps,
        elapsed_s=elapsed,
        reason=reason,
        linearized=prefix,
        failed_op=failed,
        window=failure_window(kept, prefix, failed),
    )


def failure_window(
    ops: list[Op], prefix: tuple[Op, ...], failed: Op, context: int = 6
) -> tuple[Op, ...]:
    """Ops overlapping [start, failed completion], where start is the earliest invocation among the
    failed op and the last ``context`` ops of the prefix: the smallest picture that shows the
    contradiction."""
    anchors = [failed, *prefix[-context:]]
    start = min(op.invoke_s for op in anchors)
    end = failed.complete_s if failed.complete_s is not None else failed.invoke_s
    chosen = [
        op
        for op in ops
        if op.invoke_s <= end
        and (op.outcome is Outcome.UNKNOWN or op.complete_s is None or op.complete_s >= start)
    ]
    return tuple(sorted(chosen, key=lambda o: (o.invoke_s, o.id)))


