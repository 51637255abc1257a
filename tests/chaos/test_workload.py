"""The workload generator and recorder, end to end with in-memory stores and the checker."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest

from tests.chaos.fakes import (
    AtomicStore,
    LostWriteStore,
    StaleReadStore,
    StallingStore,
    classify,
)
from tests.chaos.lincheck import History, Op, OpKind, Outcome, Recorder, Verdict, check_history
from tests.chaos.workload import (
    Invocation,
    WorkloadConfig,
    final_reads,
    perform,
    run_workload,
    summarize,
)

KEYS = ("a", "b", "c")


def run(store: AtomicStore, *, duration_s: float = 0.6, seed: int = 1) -> History:
    config = WorkloadConfig(keys=KEYS, clients=6, duration_s=duration_s, seed=seed)

    async def scenario() -> History:
        recorder = await run_workload(store, config, classify=classify)
        await final_reads(store, recorder, KEYS)
        return recorder.history(seed=seed)

    return asyncio.run(scenario())


def test_correct_store_with_failures_is_linearizable_and_well_recorded() -> None:
    history = run(AtomicStore(seed=2, p_fail=0.05, p_unknown=0.05))
    result = check_history(history)
    assert result.verdict is Verdict.OK, result.describe()

    counts = summarize(history)
    kinds = Counter(op.kind for op in history.ops)
    outcomes = Counter(op.outcome for op in history.ops)
    assert len(history.ops) > 200, counts
    assert all(kinds[k] > 10 for k in OpKind), counts
    assert outcomes[Outcome.FAIL] > 0 and outcomes[Outcome.UNKNOWN] > 0, counts
    assert any(op.kind is OpKind.CAS and op.result is True for op in history.ops), counts
    assert set(history.keys()) == set(KEYS)
    # Written values are unique, so a read identifies the write it saw.
    written = [op.value for op in history.ops if op.kind in (OpKind.PUT, OpKind.CAS)]
    assert len(written) == len(set(written))
    # Each process is sequential, and a process never continues after an unknown outcome.
    by_process: dict[int, list[Op]] = {}
    for op in sorted(history.ops, key=lambda o: o.invoke_s):
        by_process.setdefault(op.process, []).append(op)
    for ops in by_process.values():
        for before, after in itertools.pairwise(ops):
            assert before.outcome is not Outcome.UNKNOWN
            assert before.complete_s is not None and before.complete_s <= after.invoke_s
    # Every op completed within the run's bounds.
    assert all(op.complete_s is not None for op in history.ops)


def test_stale_reads_are_caught() -> None:
    result = check_history(run(StaleReadStore(seed=3, lag_s=0.05)))
    assert result.verdict is Verdict.VIOLATION
    report = result.violations[0]
    assert report.failed_op is not None and report.failed_op.kind is OpKind.GET


def test_lost_writes_are_caught() -> None:
    result = check_history(run(LostWriteStore(seed=4, every=4)))
    assert result.verdict is Verdict.VIOLATION


def test_timeouts_and_exceptions_are_classified() -> None:
    async def executor(process: int, inv: Invocation) -> None:
        if inv.key == "hang":
            await asyncio.sleep(30)
        if inv.key == "refuse":
            raise ConnectionRefusedError("no leader")
        raise RuntimeError("connection reset mid-call")

    def classify_refused(exc: BaseException) -> Outcome:
        return Outcome.FAIL if isinstance(exc, ConnectionRefusedError) else Outcome.UNKNOWN

    async def scenario() -> Recorder:
        rec = Recorder()
        for key in ("hang", "refuse", "reset"):
            inv = Invocation(kind=OpKind.PUT, key=key, value=f"v-{key}")
            await perform(executor, rec, 0, inv, classify=classify_refused, timeout_s=0.05)
        return rec

    ops = {op.key: op for op in asyncio.run(scenario()).history().ops}
    assert ops["hang"].outcome is Outcome.UNKNOWN and "timeout" in (ops["hang"].error or "")
    assert ops["refuse"].outcome is Outcome.FAIL and "no leader" in (ops["refuse"].error or "")
    assert ops["reset"].outcome is Outcome.UNKNOWN


def test_a_wrongly_typed_executor_result_is_a_harness_bug() -> None:
    async def executor(process: int, inv: Invocation) -> object:
        return 42

    async def scenario() -> None:
        await perform(executor, Recorder(), 0, Invocation(kind=OpKind.GET, key="k"))  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="want str or None"):
        asyncio.run(scenario())


def test_stop_event_and_op_bound_end_the_run() -> None:
    async def scenario() -> History:
        stop = asyncio.Event()
        store = AtomicStore(seed=5)
        config = WorkloadConfig(keys=KEYS, clients=3, duration_s=60, max_ops_per_client=10_000)
        task = asyncio.create_task(run_workload(store, config, stop=stop))
        await asyncio.sleep(0.2)
        stop.set()
        recorder = await asyncio.wait_for(task, timeout=5)
        return recorder.history()

    assert len(asyncio.run(scenario()).ops) > 0

    async def bounded() -> History:
        config = WorkloadConfig(keys=KEYS, clients=2, duration_s=60, max_ops_per_client=7)
        return (await run_workload(AtomicStore(seed=6), config)).history()

    assert len(asyncio.run(bounded()).ops) == 14


def test_final_reads_are_definite_and_recorded() -> None:
    async def scenario() -> tuple[dict[str, str | None], History]:
        store = AtomicStore(seed=7, p_unknown=0.3)
        store.data["a"] = "x"
        rec = Recorder()
        values = await final_reads(store, rec, ["a", "b"], retry_pause_s=0.0)
        return values, rec.history()

    values, history = asyncio.run(scenario())
    assert values == {"a": "x", "b": None}
    finals = [op for op in history.ops if op.outcome is Outcome.OK]
    assert {op.key for op in finals} == {"a", "b"}


def test_writes_that_land_after_their_client_gave_up_are_accepted() -> None:
    store = StallingStore(seed=8, period_s=0.4, stall_s=0.2)
    config = WorkloadConfig(keys=KEYS, clients=8, duration_s=1.2, op_timeout_s=0.05, seed=8)

    async def scenario() -> History:
        recorder = await run_workload(store, config, classify=classify)
        await final_reads(store, recorder, KEYS)
        return recorder.history()

    history = asyncio.run(scenario())
    unknown_writes = {
        op.value for op in history.ops if op.outcome is Outcome.UNKNOWN and op.value is not None
    }
    assert unknown_writes & store.applied, "some timed-out writes should have taken effect"
    result = check_history(history)
    assert result.verdict is Verdict.OK, result.describe()
