"""Terse builders for hand-written histories (tests and examples only; no checker logic here).

``ok(p, "put", "k", 0, 1, value="a")`` reads: process p ran put(k, "a") from t=0 to t=1 and it
succeeded. ``info(...)`` is an unknown outcome; ``fail(...)`` a definite failure.
"""

from __future__ import annotations

import itertools

from tests.chaos.lincheck.history import History, Op, OpKind, Outcome, Result, Value, history_of

_ids = itertools.count()


def _op(
    process: int,
    kind: str,
    key: str,
    invoke_s: float,
    complete_s: float | None,
    *,
    outcome: Outcome,
    value: Value = None,
    expected: Value = None,
    result: Result = None,
) -> Op:
    return Op(
        id=next(_ids),
        process=process,
        kind=OpKind(kind),
        key=key,
        value=value,
        expected=expected,
        invoke_s=invoke_s,
        complete_s=complete_s,
        outcome=outcome,
        result=result,
    )


def ok(
    process: int,
    kind: str,
    key: str,
    invoke_s: float,
    complete_s: float,
    *,
    value: Value = None,
    expected: Value = None,
    result: Result = None,
) -> Op:
    return _op(
        process, kind, key, invoke_s, complete_s,
        outcome=Outcome.OK, value=value, expected=expected, result=result,
    )


def info(
    process: int,
    kind: str,
    key: str,
    invoke_s: float,
    *,
    value: Value = None,
    expected: Value = None,
) -> Op:
    return _op(
        process, kind, key, invoke_s, None,
        outcome=Outcome.UNKNOWN, value=value, expected=expected,
    )


def fail(
    process: int,
    kind: str,
    key: str,
    invoke_s: float,
    complete_s: float,
    *,
    value: Value = None,
    expected: Value = None,
) -> Op:
    return _op(
        process, kind, key, invoke_s, complete_s,
        outcome=Outcome.FAIL, value=value, expected=expected,
    )


def hist(*ops: Op) -> History:
    return history_of(ops)
