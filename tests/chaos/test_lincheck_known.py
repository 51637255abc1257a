"""Hand-written histories with known verdicts; each names the bug (or subtlety) it stands for."""

from __future__ import annotations

import pytest

from tests.chaos.histories import fail, hist, info, ok
from tests.chaos.lincheck import History, Verdict, check_history

K = "k"


def verdict(h: History) -> Verdict:
    return check_history(h).verdict


LINEARIZABLE: dict[str, History] = {
    "empty": hist(),
    "read of absent key": hist(ok(0, "get", K, 0, 1, result=None)),
    "sequential put then get": hist(
        ok(0, "put", K, 0, 1, value="a"), ok(1, "get", K, 2, 3, result="a")
    ),
    "read overlapping a put may see either (old)": hist(
        ok(0, "put", K, 0, 10, value="a"),
        ok(1, "get", K, 1, 2, result=None),
        ok(1, "get", K, 3, 4, result="a"),
        ok(2, "get", K, 5, 6, result="a"),
    ),
    "overlapping puts may order either way": hist(
        ok(0, "put", K, 0, 5, value="a"),
        ok(1, "put", K, 1, 6, value="b"),
        ok(2, "get", K, 7, 8, result="a"),
    ),
    "concurrent cas: one winner": hist(
        ok(0, "cas", K, 0, 5, expected=None, value="x", result=False),
        ok(1, "cas", K, 1, 4, expected=None, value="y", result=True),
        ok(2, "get", K, 6, 7, result="y"),
    ),
    "delete reports existence": hist(
        ok(0, "delete", K, 0, 1, result=False),
        ok(0, "put", K, 2, 3, value="a"),
        ok(1, "delete", K, 4, 5, result=True),
        ok(1, "get", K, 6, 7, result=None),
    ),
    "equal timestamps count as overlapping": hist(
        ok(0, "put", K, 0, 1, value="a"), ok(1, "get", K, 1, 2, result=None)
    ),
    "unknown put explains a later read": hist(
        info(0, "put", K, 0, value="a"), ok(1, "get", K, 5, 6, result="a")
    ),
    "unknown put takes effect long after its client gave up": hist(
        info(0, "put", K, 0, value="a"),
        ok(1, "get", K, 5, 6, result=None),
        ok(1, "get", K, 7, 8, result="a"),
    ),
    "unknown put that never happened": hist(
        info(0, "put", K, 0, value="a"), ok(1, "get", K, 5, 6, result=None)
    ),
    "unknown delete may or may not have happened": hist(
        ok(0, "put", K, 0, 1, value="a"),
        info(1, "delete", K, 2),
        ok(2, "get", K, 3, 4, result="a"),
        ok(2, "get", K, 5, 6, result=None),
    ),
    "unknown cas explains a failed cas": hist(
        ok(0, "put", K, 0, 1, value="a"),
        info(1, "cas", K, 2, expected="a", value="b"),
        ok(2, "cas", K, 3, 4, expected="a", value="c", result=False),
        ok(2, "get", K, 5, 6, result="b"),
    ),
    "unknown gets are ignored": hist(info(0, "get", K, 0), ok(1, "get", K, 1, 2, result=None)),
    "many interchangeable unknown deletes": hist(
        ok(0, "put", K, 0, 1, value="a"),
        *[info(10 + i, "delete", K, 2 + i) for i in range(30)],
        ok(1, "get", K, 40, 41, result="a"),
        ok(1, "put", K, 42, 43, value="b"),
        ok(1, "get", K, 44, 45, result=None),
    ),
    "keys are independent": hist(
        ok(0, "put", "x", 0, 1, value="a"),
        ok(1, "get", "y", 2, 3, result=None),
        ok(1, "get", "x", 4, 5, result="a"),
    ),
}

NOT_LINEARIZABLE: dict[str, History] = {
    "stale read": hist(
        ok(0, "put", K, 0, 1, value="a"),
        ok(0, "put", K, 2, 3, value="b"),
        ok(1, "get", K, 4, 5, result="a"),
    ),
    "lost write": hist(ok(0, "put", K, 0, 1, value="a"), ok(1, "get", K, 2, 3, result=None)),
    "read of a value never written": hist(ok(0, "get", K, 0, 1, result="ghost")),
    "read of a definitely failed write": hist(
        fail(0, "put", K, 0, 1, value="a"), ok(1, "get", K, 2, 3, result="a")
    ),
    "double-applied cas (retry applied twice)": hist(
        ok(0, "put", K, 0, 1, value="a"),
        ok(0, "cas", K, 2, 3, expected="a", value="b", result=True),
        ok(1, "put", K, 4, 5, value="a"),
        ok(2, "get", K, 6, 7, result="b"),
    ),
    "two cas from the same value both succeed": hist(
        ok(0, "put", K, 0, 1, value="a"),
        ok(1, "cas", K, 2, 5, expected="a", value="b", result=True),
        ok(2, "cas", K, 3, 6, expected="a", value="c", result=True),
    ),
    "cas reports failure although it matched": hist(
        ok(0, "put", K, 0, 1, value="a"),
        ok(1, "cas", K, 2, 3, expected="a", value="b", result=False),
    ),
    "delete of an absent key reports it existed": hist(ok(0, "delete", K, 0, 1, result=True)),
    "read after delete sees the value": hist(
        ok(0, "put", K, 0, 1, value="a"),
        ok(0, "delete", K, 2, 3, result=True),
        ok(1, "get", K, 4, 5, result="a"),
    ),
    "unknown put cannot explain a read that came before it": hist(
        ok(1, "get", K, 0, 1, result="a"), info(0, "put", K, 2, value="a")
    ),
    "unknown put takes effect at most once": hist(
        ok(0, "put", K, 0, 1, value="a"),
        info(1, "put", K, 2, value="b"),
        ok(2, "get", K, 3, 4, result="a"),
        ok(2, "get", K, 5, 6, result="b"),
        ok(2, "get", K, 7, 8, result="a"),
    ),
    "value flips back while writes overlap": hist(
        ok(0, "put", K, 0, 10, value="a"),
        ok(1, "put", K, 0, 10, value="b"),
        ok(2, "get", K, 1, 2, result="a"),
        ok(2, "get", K, 3, 4, result="b"),
        ok(2, "get", K, 5, 6, result="a"),
    ),
    "violation on one key among clean keys": hist(
        ok(0, "put", "x", 0, 1, value="a"),
        ok(1, "get", "x", 2, 3, result="a"),
        ok(0, "put", "y", 0, 1, value="b"),
        ok(1, "get", "y", 2, 3, result=None),
    ),
}


@pytest.mark.parametrize("name", sorted(LINEARIZABLE))
def test_linearizable_histories_are_accepted(name: str) -> None:
    result = check_history(LINEARIZABLE[name])
    assert result.verdict is Verdict.OK, result.describe()


@pytest.mark.parametrize("name", sorted(NOT_LINEARIZABLE))
def test_non_linearizable_histories_are_rejected(name: str) -> None:
    result = check_history(NOT_LINEARIZABLE[name])
    assert result.verdict is Verdict.VIOLATION, result.describe()


def test_stale_read_report_names_the_read_and_the_prefix() -> None:
    put_a = ok(0, "put", K, 0, 1, value="a")
    put_b = ok(0, "put", K, 2, 3, value="b")
    stale = ok(1, "get", K, 4, 5, result="a")
    later = ok(1, "get", K, 6, 7, result="b")
    result = check_history(hist(put_a, put_b, stale, later))
    (report,) = result.violations
    assert report.key == K
    assert report.failed_op == stale
    assert report.linearized == (put_a, put_b)
    assert stale in report.window and put_b in report.window
    assert later not in report.window  # after the failure: not part of the picture
    assert "could not place" in report.describe() and stale.describe() in report.describe()


def test_only_the_violating_key_is_reported() -> None:
    result = check_history(NOT_LINEARIZABLE["violation on one key among clean keys"])
    assert [r.key for r in result.violations] == ["y"]
    assert {r.key: r.verdict for r in result.keys} == {"x": Verdict.OK, "y": Verdict.VIOLATION}
