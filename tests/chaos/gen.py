"""Random histories for property tests and benchmarks: a true sequential execution, smeared.

Each op really takes effect at its linearization point ``10 * i`` against a dict; the recorded
invocation and completion are pushed out by random amounts around that point, so concurrent ops
overlap exactly as they would against a correct store. Some ops become unknown (happened or not)
or definitely failed (did not happen). Such a history is linearizable by construction.
"""

from __future__ import annotations

import random

from tests.chaos.lincheck.history import History, Op, OpKind, Outcome, Result, history_of


def executed_history(
    rng: random.Random,
    n_ops: int,
    *,
    keys: tuple[str, ...] = ("k0", "k1", "k2"),
    max_smear: float = 25.0,
    p_unknown: float = 0.1,
    p_fail: float = 0.05,
) -> History:
    state: dict[str, str] = {}
    written: list[str] = []
    ops: list[Op] = []
    for i in range(n_ops):
        kind = rng.choice(list(OpKind))
        key = rng.choice(keys)
        point = 10.0 * i
        invoke = point - rng.uniform(0, max_smear)
        complete = point + rng.uniform(0, max_smear)
        roll = rng.random()
        if roll < p_fail:
            outcome, happens = Outcome.FAIL, False
        elif roll < p_fail + p_unknown:
            outcome, happens = Outcome.UNKNOWN, rng.random() < 0.5
        else:
            outcome, happens = Outcome.OK, True
        value = f"v{i}" if kind in (OpKind.PUT, OpKind.CAS) else None
        expected = None
        if kind is OpKind.CAS:
            options: list[str | None] = [state.get(key), None]
            if written:
                options.append(rng.choice(written))
            expected = rng.choice(options)
        current = state.get(key)
        result: Result = None
        if kind is OpKind.GET:
            result = current
        elif kind is OpKind.PUT:
            if happens:
                state[key] = value  # type: ignore[assignment]
        elif kind is OpKind.DELETE:
            result = current is not None
            if happens:
                state.pop(key, None)
        else:
            result = current == expected
            if happens and result:
                state[key] = value  # type: ignore[assignment]
        if value is not None:
            written.append(value)
        ops.append(
            Op(
                id=i,
                process=i % 7 if outcome is Outcome.OK else 100 + i,
                kind=kind,
                key=key,
                value=value,
                expected=expected,
                invoke_s=invoke,
                complete_s=None if outcome is Outcome.UNKNOWN else complete,
                outcome=outcome,
                result=result if outcome is Outcome.OK else None,
            )
        )
    return history_of(ops)
