"""Properties: the checker agrees with brute force, accepts true executions, rejects forgeries."""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import replace

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.chaos.gen import executed_history
from tests.chaos.lincheck import Budget, History, Op, OpKind, Outcome, Verdict, check_history
from tests.chaos.lincheck.history import history_of

# --- a brute-force oracle, independent of the checker's encoding and search ------------------


def _apply(state: str | None, op: Op) -> tuple[bool, str | None]:
    """(result consistent?, new state) for one op on plain string states."""
    known = op.outcome is Outcome.OK
    if op.kind is OpKind.GET:
        return (not known or op.result == state), state
    if op.kind is OpKind.PUT:
        return True, op.value
    if op.kind is OpKind.DELETE:
        return (not known or op.result == (state is not None)), None
    swapped = state == op.expected
    return (not known or op.result == swapped), (op.value if swapped else state)


def brute_force_linearizable(ops: list[Op]) -> bool:
    ops = [o for o in ops if o.outcome is not Outcome.FAIL]
    definite = [o for o in ops if o.outcome is Outcome.OK]
    unknown = [o for o in ops if o.outcome is Outcome.UNKNOWN]

    def end(o: Op) -> float:
        return o.complete_s if o.outcome is Outcome.OK and o.complete_s is not None else 1e18

    for r in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, r):
            for perm in itertools.permutations(definite + list(chosen)):
                # Real-time order: a before b whenever a completed strictly before b was invoked.
                if any(end(b) < a.invoke_s for i, a in enumerate(perm) for b in perm[i + 1 :]):
                    continue
                state: str | None = None
                for o in perm:
                    good, state = _apply(state, o)
                    if not good:
                        break
                else:
                    return True
    return False


_values = st.sampled_from(["a", "b", "c"])


_MOSTLY_OK = [Outcome.OK, Outcome.OK, Outcome.OK, Outcome.UNKNOWN, Outcome.FAIL]
_UNKNOWN_HEAVY = [Outcome.OK, Outcome.UNKNOWN]


@st.composite
def small_histories(
    draw: st.DrawFn, outcomes: list[Outcome] = _MOSTLY_OK, unique: bool = False
) -> list[Op]:
    """Random single-key histories; ``unique``: every write has its own value, as in chaos runs."""
    n = draw(st.integers(1, 6))
    values = st.sampled_from([f"v{i}" for i in range(n)]) if unique else _values
    ops = []
    for i in range(n):
        kind = draw(st.sampled_from(list(OpKind)))
        outcome = draw(st.sampled_from(outcomes))
        invoke = draw(st.integers(0, 12))
        complete = invoke + draw(st.integers(0, 6))
        result: str | bool | None = None
        if outcome is Outcome.OK:
            if kind is OpKind.GET:
                result = draw(st.one_of(st.none(), values))
            elif kind is not OpKind.PUT:
                result = draw(st.booleans())
        ops.append(
            Op(
                id=i,
                process=i,
                kind=kind,
                key="k",
                value=(f"v{i}" if unique else draw(_values))
                if kind in (OpKind.PUT, OpKind.CAS)
                else None,
                expected=draw(st.one_of(st.none(), values)) if kind is OpKind.CAS else None,
                invoke_s=float(invoke),
                complete_s=None if outcome is Outcome.UNKNOWN else float(complete),
                outcome=outcome,
                result=result,
            )
        )
    return ops


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_histories())
def test_checker_agrees_with_brute_force(ops: list[Op]) -> None:
    expected = brute_force_linearizable(ops)
    got = check_history(history_of(ops)).verdict
    assert got is (Verdict.OK if expected else Verdict.VIOLATION), [o.describe() for o in ops]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans().flatmap(lambda u: small_histories(outcomes=_UNKNOWN_HEAVY, unique=u)))
def test_checker_agrees_with_brute_force_when_half_the_ops_are_unknown(ops: list[Op]) -> None:
    # Exercises the pruning rules for unknown ops and the promotion of observed unknown writes.
    expected = brute_force_linearizable(ops)
    got = check_history(history_of(ops)).verdict
    assert got is (Verdict.OK if expected else Verdict.VIOLATION), [o.describe() for o in ops]


# --- true executions are accepted; a read of a value never written is rejected --------------


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 120))
def test_smeared_sequential_executions_are_linearizable(seed: int, n_ops: int) -> None:
    history = executed_history(random.Random(seed), n_ops)
    result = check_history(history)
    assert result.verdict is Verdict.OK, result.describe()


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 120), st.data())
def test_read_of_unwritten_value_is_rejected(seed: int, n_ops: int, data: st.DataObject) -> None:
    history = executed_history(random.Random(seed), n_ops)
    reads = [o for o in history.ops if o.kind is OpKind.GET and o.outcome is Outcome.OK]
    assume(reads)
    victim = data.draw(st.sampled_from(reads))
    forged = replace(victim, result="never-written")
    mutated = History(ops=tuple(forged if o.id == victim.id else o for o in history.ops))
    result = check_history(mutated)
    assert result.verdict is Verdict.VIOLATION
    (report,) = result.violations
    assert report.key == victim.key
    assert report.failed_op == forged


# --- scale and budget -------------------------------------------------------------------------


def test_thousands_of_ops_per_key_check_quickly() -> None:
    # ~3000 ops on one key, ~5 in flight at any moment, 10% unknown: a busy 30 s chaos run.
    history = executed_history(random.Random(7), 3000, keys=("hot",), p_unknown=0.1)
    started = time.monotonic()
    result = check_history(history, Budget(time_s=30))
    elapsed = time.monotonic() - started
    assert result.verdict is Verdict.OK, result.describe()
    assert elapsed < 5, f"took {elapsed:.1f}s"


def test_budget_exceeded_is_unknown_not_a_hang() -> None:
    history = executed_history(random.Random(3), 3000, keys=("hot",))
    started = time.monotonic()
    result = check_history(history, Budget(time_s=30, max_steps=1))
    assert result.verdict is Verdict.UNKNOWN
    assert "budget exceeded" in result.keys[0].reason
    assert time.monotonic() - started < 5
