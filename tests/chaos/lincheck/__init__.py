"""lincheck: a Jepsen-style history model and a linearizability checker for the KV register.

Pure code (standard library only, no I/O except reading/writing history and picture files), so it
can check a history offline: ``python -m tests.chaos.lincheck check FILE`` (from the repository
root) or ``python tests/chaos/lincheck/cli.py check FILE`` (from anywhere).
"""

from .artifacts import assert_linearizable, write_failure_artifacts
from .checker import Budget, CheckResult, KeyReport, Verdict, check_history, check_key
from .history import History, HistoryError, Op, OpKind, Outcome, Recorder, history_of
from .render import FaultWindow, render_report_html, timeline_svg

__all__ = [
    "Budget",
    "CheckResult",
    "FaultWindow",
    "History",
    "HistoryError",
    "KeyReport",
    "Op",
    "OpKind",
    "Outcome",
    "Recorder",
    "Verdict",
    "assert_linearizable",
    "check_history",
    "check_key",
    "history_of",
    "render_report_html",
    "timeline_svg",
    "write_failure_artifacts",
]
