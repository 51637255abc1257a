"""Re-check a saved history offline: ``python tests/chaos/lincheck/cli.py check FILE [--html DIR]``.

Rules kept here: exit status 0 = linearizable, 1 = violation, 2 = unknown (budget exceeded),
3 = unreadable history. Runnable both as ``python -m tests.chaos.lincheck`` and as a plain script
(the script form puts the repository root on sys.path itself, so no install is needed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests.chaos.lincheck` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests.chaos.lincheck.artifacts import fault_windows
    from tests.chaos.lincheck.checker import Budget, Verdict, check_history
    from tests.chaos.lincheck.history import History, HistoryError
    from tests.chaos.lincheck.render import render_report_html
else:
    from .artifacts import fault_windows
    from .checker import Budget, Verdict, check_history
    from .history import History, HistoryError
    from .render import render_report_html

EXIT = {Verdict.OK: 0, Verdict.VIOLATION: 1, Verdict.UNKNOWN: 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lincheck", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check a history JSON file for linearizability")
    check.add_argument("file", type=Path)
    check.add_argument("--html", type=Path, default=None, help="write violation timelines here")
    check.add_argument("--budget-s", type=float, default=60.0, help="search time per key")
    args = parser.parse_args(argv)

    try:
        history = History.load(args.file)
    except (OSError, HistoryError) as exc:
        sys.stderr.write(f"cannot read history: {exc}\n")
        return 3
    result = check_history(history, Budget(time_s=args.budget_s))
    sys.stdout.write(result.describe() + "\n")
    if args.html is not None:
        args.html.mkdir(parents=True, exist_ok=True)
        for report in result.violations:
            page = render_report_html(
                report,
                args.html / f"violation-{_safe(report.key)}.html",
                faults=fault_windows(history.meta),
            )
            sys.stdout.write(f"timeline: {page}\n")
    return EXIT[result.verdict]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]


if __name__ == "__main__":
    sys.exit(main())
