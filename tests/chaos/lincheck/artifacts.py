"""What a failed chaos run leaves behind: the history file, a timeline per violating key, a message.

Rules kept here:
- The message is everything a reader needs without the CI logs: the seed and fault schedule (from
  the history's meta), the failing key, the ops around the failure, the files, and the one command
  that re-checks the saved history offline.
- Fault windows are read from ``meta["faults"]`` when it is a list of
  ``{"start_s": float, "end_s": float | None, "name": str}`` (same clock as the ops); they are
  drawn as bands on the timeline. Anything else in meta is shown verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checker import Budget, CheckResult, Verdict, check_history
from .history import History
from .render import FaultWindow, render_report_html


def fault_windows(meta: Mapping[str, Any]) -> list[FaultWindow]:
    windows = []
    for item in meta.get("faults", []) if isinstance(meta.get("faults"), list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("start_s"), int | float):
            end = item.get("end_s")
            windows.append(
                FaultWindow(
                    start_s=float(item["start_s"]),
                    end_s=float(end) if isinstance(end, int | float) else None,
                    name=str(item.get("name", "fault")),
                )
            )
    return windows


def write_failure_artifacts(
    history: History, result: CheckResult, directory: str | Path, *, name: str = "history"
) -> str:
    """Save the history and one HTML timeline per violating key; return the report text."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    saved = history.save(out / f"{name}.json")
    lines = [result.describe(), "", f"history: {saved}"]
    faults = fault_windows(history.meta)
    for report in result.violations:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in report.key)[:60]
        page = render_report_html(
            report,
            out / f"{name}-violation-{safe}.html",
            title=f"{name}: key {report.key!r} not linearizable",
            faults=faults,
        )
        lines.append(f"timeline: {page}")
    lines.append(f"re-check offline: python -m tests.chaos.lincheck check {saved} --html {out}")
    lines.append("meta: " + json.dumps(dict(history.meta), sort_keys=True, default=str)[:4000])
    return "\n".join(lines)


def assert_linearizable(
    history: History,
    directory: str | Path,
    *,
    budget: Budget | None = None,
    allow_unknown: bool = False,
    name: str = "history",
) -> CheckResult:
    """Check, and on a violation (or an inconclusive check, unless allowed) save the artifacts
    and raise AssertionError with the full report."""
    result = check_history(history, budget)
    if result.verdict is Verdict.VIOLATION or (
        result.verdict is Verdict.UNKNOWN and not allow_unknown
    ):
        raise AssertionError(write_failure_artifacts(history, result, directory, name=name))
    return result
