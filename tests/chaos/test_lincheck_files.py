"""History files, the offline re-check command, and the timeline picture of a violation."""

from __future__ import annotations

import html
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chaos.gen import executed_history
from tests.chaos.histories import fail, hist, info, ok
from tests.chaos.lincheck import (
    Budget,
    History,
    HistoryError,
    OpKind,
    Outcome,
    Recorder,
    Verdict,
    assert_linearizable,
    check_history,
    render_report_html,
)
from tests.chaos.lincheck.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]

STALE = hist(
    ok(0, "put", "k", 0, 1, value="a"),
    ok(0, "put", "k", 2, 3, value="b"),
    ok(1, "get", "k", 4, 5, result="a"),
    info(2, "cas", "k", 0.5, expected="a", value="c"),
    fail(3, "delete", "k", 1, 2),
)


def test_history_round_trips_through_json(tmp_path: Path) -> None:
    history = History(ops=STALE.ops, meta={"seed": 42, "faults": ["partition 0|1,2"]})
    loaded = History.load(history.save(tmp_path / "h.json"))
    assert loaded == history
    assert check_history(loaded).verdict is Verdict.VIOLATION


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"format": "other/9"}, "not a raftkv-history"),
        ({"ops": [{"id": 1}]}, "bad op"),
        ({"ops": [{**STALE.ops[0].to_json(), "complete_s": -1.0}]}, "completes before"),
        ({"ops": [{**STALE.ops[2].to_json(), "result": 5}]}, "get returns"),
        ({"ops": [STALE.ops[0].to_json(), STALE.ops[0].to_json()]}, "duplicate op ids"),
    ],
)
def test_malformed_history_files_are_refused_clearly(
    tmp_path: Path, patch: dict[str, object], message: str
) -> None:
    doc = {**STALE.to_json(), **patch}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(HistoryError, match=message):
        History.load(path)


def test_recorder_builds_ops_and_keeps_unfinished_ones_unknown() -> None:
    ticks = iter(range(100))
    rec = Recorder(clock=lambda: float(next(ticks)))
    a = rec.invoke(process=0, kind=OpKind.PUT, key="k", value="v1")
    b = rec.invoke(process=1, kind=OpKind.GET, key="k")
    c = rec.invoke(process=2, kind=OpKind.CAS, key="k", expected="v1", value="v2")
    rec.complete(a, Outcome.OK)
    rec.complete(b, Outcome.OK, result="v1")
    with pytest.raises(KeyError):
        rec.complete(a, Outcome.OK)  # completing twice is a harness bug
    ops = {op.id: op for op in rec.history().ops}
    assert (ops[a].invoke_s, ops[a].complete_s, ops[a].outcome) == (0.0, 3.0, Outcome.OK)
    assert ops[b].result == "v1"
    assert ops[c].outcome is Outcome.UNKNOWN and ops[c].complete_s is None
    assert check_history(rec.history()).verdict is Verdict.OK


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = hist(ok(0, "put", "k", 0, 1, value="a"), ok(1, "get", "k", 2, 3, result="a"))
    assert cli_main(["check", str(good.save(tmp_path / "good.json"))]) == 0
    bad = STALE.save(tmp_path / "bad.json")
    out_dir = tmp_path / "pictures"
    assert cli_main(["check", str(bad), "--html", str(out_dir)]) == 1
    printed = capsys.readouterr().out
    assert "violation" in printed and "could not place" in printed
    assert (out_dir / "violation-k.html").exists()
    (tmp_path / "junk.json").write_text("{")
    assert cli_main(["check", str(tmp_path / "junk.json")]) == 3


@pytest.mark.parametrize(
    "argv",
    [["-m", "tests.chaos.lincheck"], [str(REPO / "tests/chaos/lincheck/cli.py")]],
    ids=["module", "script"],
)
def test_offline_recheck_is_one_command(tmp_path: Path, argv: list[str]) -> None:
    bad = STALE.save(tmp_path / "bad.json")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, *argv, "check", str(bad)],
        cwd=REPO if argv[0] == "-m" else tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "key 'k': violation" in proc.stdout


def test_violation_timeline_shows_the_failing_op(tmp_path: Path) -> None:
    (report,) = check_history(STALE).violations
    assert report.failed_op is not None
    page = render_report_html(report, tmp_path / "v.html", title="seed 42").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "</svg>" in page
    assert "FAILED: " in page
    assert "#d62728" in page  # the failing bar is red
    # The failing op is labelled with its call and result, and the prefix ops are numbered.
    assert "FAILED: " + html.escape(report.failed_op.describe()) in page
    assert "L1 " in page and "L2 " in page
    # One lane per process that appears in the window.
    for process in {op.process for op in report.window}:
        assert f">p{process}</text>" in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained


def test_failure_artifacts_carry_seed_faults_files_and_the_recheck_command(tmp_path: Path) -> None:
    faults = [{"start_s": 1.5, "end_s": 3.5, "name": "partition 0 | 1 2"}]
    history = History(ops=STALE.ops, meta={"seed": 1234, "faults": faults})
    with pytest.raises(AssertionError) as failure:
        assert_linearizable(history, tmp_path, name="run-1234")
    message = str(failure.value)
    assert "1234" in message and "partition 0 | 1 2" in message
    assert "could not place" in message
    assert f"python -m tests.chaos.lincheck check {tmp_path / 'run-1234.json'}" in message
    assert History.load(tmp_path / "run-1234.json") == history
    page = (tmp_path / "run-1234-violation-k.html").read_text()
    assert "partition 0 | 1 2" in page and "#ffdd88" in page  # the fault band is drawn


def test_assert_linearizable_passes_quietly_and_refuses_inconclusive_checks(tmp_path: Path) -> None:
    good = hist(ok(0, "put", "k", 0, 1, value="a"), ok(1, "get", "k", 2, 3, result="a"))
    assert assert_linearizable(good, tmp_path).verdict is Verdict.OK
    assert not list(tmp_path.iterdir())  # nothing written for a pass
    big = executed_history(random.Random(1), 3000, keys=("k",))
    with pytest.raises(AssertionError, match="budget exceeded"):
        assert_linearizable(big, tmp_path, budget=Budget(max_steps=1))
    assert assert_linearizable(
        big, tmp_path, budget=Budget(max_steps=1), allow_unknown=True
    ).verdict is Verdict.UNKNOWN
