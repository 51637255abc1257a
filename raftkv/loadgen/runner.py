"""Run a load: N concurrent workers against one ``Target``, bounded in time and operations.

Rules:
- A run ends at ``duration_s`` or after ``max_ops`` operations, whichever comes first; the prefill
  phase is bounded by ``key_space`` writes and by ``PREFILL_LIMIT_S``.
- Each worker has its own seeded ``random.Random``, so a run's sequence of keys is reproducible.
- A worker never dies of a failed operation: the failure is counted under its status code and the
  worker goes on (after ``ERROR_PAUSE_S`` so a down cluster is not spun on).
- ``stop`` (an ``asyncio.Event``) ends a run early, e.g. when the caller has seen enough.
- Operations still running ``HARD_STOP_EXTRA_S`` after the last deadline are cancelled (counted
  once as ``HARD_STOP``), so a target that ignores deadlines cannot stretch a run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from raftkv.loadgen.spec import LoadSpec, Workload
from raftkv.loadgen.stats import LoadResult, Recorder
from raftkv.loadgen.targets import Target, error_code

PREFILL_LIMIT_S = 600.0
PREFILL_CONCURRENCY = 64
ERROR_PAUSE_S = 0.005
PROGRESS_EVERY_S = 1.0
HARD_STOP_EXTRA_S = 5.0

Progress = Callable[[str], None]


def key_for(spec: LoadSpec, index: int) -> bytes:
    return f"{spec.key_prefix}{index:012d}".encode()


def value_for(spec: LoadSpec, seed: int) -> bytes:
    rng = random.Random(seed)
    return rng.randbytes(spec.value_size_bytes)


async def prefill(spec: LoadSpec, target: Target, progress: Progress | None = None) -> int:
    """Write every key of the key space once (bounded in time); returns how many succeeded."""
    value = value_for(spec, spec.seed)
    deadline = time.perf_counter() + PREFILL_LIMIT_S
    next_index = 0
    written = 0

    async def worker() -> None:
        nonlocal next_index, written
        while next_index < spec.key_space and time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            try:
                await target.put(key_for(spec, index), value, spec.op_timeout_s)
                written += 1
            except Exception:  # counted by the caller as a shortfall
                await asyncio.sleep(ERROR_PAUSE_S)

    workers = min(PREFILL_CONCURRENCY, spec.key_space)
    await asyncio.gather(*(worker() for _ in range(workers)))
    if progress is not None:
        progress(f"prefill: wrote {written}/{spec.key_space} keys")
    return written


async def run_load(
    spec: LoadSpec,
    target: Target,
    *,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
) -> LoadResult:
    """Offer ``spec``'s load to an already started ``target``; return what was measured."""
    if spec.reads and spec.prefill:
        await prefill(spec, target, progress)
    started = time.perf_counter()
    deadline = started + spec.duration_s
    recorder = Recorder(
        started=started, warmup_s=spec.warmup_s, record_completions=spec.record_completions,
        deadline=deadline,
    )
    stop = stop or asyncio.Event()
    counter = iter(range(spec.max_ops))
    value = value_for(spec, spec.seed + 1)

    async def worker(number: int) -> None:
        rng = random.Random(spec.seed * 1_000_003 + number)
        for op_index in counter:
            if stop.is_set() or time.perf_counter() >= deadline:
                return
            index = op_index % spec.key_space if spec.sequential_keys else rng.randrange(
                spec.key_space
            )
            recorder.issued += 1
            await _one_op(spec, target, recorder, rng, key=key_for(spec, index), value=value)

    reporter = None
    if progress is not None:
        reporter = asyncio.get_running_loop().create_task(
            _report_progress(spec, recorder, deadline, progress)
        )
    workers = asyncio.gather(*(worker(n) for n in range(spec.clients)))
    try:
        # A target that ignores its deadline must not stretch the run: hard stop past the end.
        await asyncio.wait_for(workers, spec.duration_s + spec.op_timeout_s + HARD_STOP_EXTRA_S)
    except TimeoutError:
        recorder.errors["HARD_STOP"] += 1
    finally:
        if reporter is not None:
            reporter.cancel()
    return recorder.finish(
        target=target.name,
        describe=spec.describe(),
        workload=spec.workload.value,
        clients=spec.clients,
        ended=min(time.perf_counter(), max(recorder.last_end, started)),
    )


async def _one_op(
    spec: LoadSpec, target: Target, recorder: Recorder, rng: random.Random, *, key: bytes,
    value: bytes,
) -> None:
    workload = spec.workload
    if workload is Workload.MIXED:
        workload = Workload.READ if rng.random() < spec.read_fraction else Workload.WRITE
    op = "write" if workload is Workload.WRITE else "read"
    begin = time.perf_counter()
    try:
        if op == "write":
            await target.put(key, value, spec.op_timeout_s)
        else:
            await target.get(key, workload is Workload.STALE, spec.op_timeout_s)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        recorder.record_error(error_code(error), time.perf_counter())
        await asyncio.sleep(ERROR_PAUSE_S)
        return
    recorder.record_ok(op, begin, time.perf_counter())


async def _report_progress(
    spec: LoadSpec, recorder: Recorder, deadline: float, progress: Progress
) -> None:
    last_done = 0
    last_time = time.perf_counter()
    while time.perf_counter() < deadline + PROGRESS_EVERY_S:
        await asyncio.sleep(PROGRESS_EVERY_S)
        now = time.perf_counter()
        rate = (recorder.done - last_done) / max(1e-9, now - last_time)
        last_done, last_time = recorder.done, now
        window = recorder.window_latency(PROGRESS_EVERY_S, now)
        errors = sum(recorder.errors.values()) + sum(recorder.warmup_errors.values())
        phase = "warm-up" if now < recorder.measure_from else "measure"
        progress(
            f"[{now - recorder.started:5.1f}/{spec.duration_s:g}s {phase}] "
            f"{recorder.done:,} ops  {rate:,.0f}/s  p50 {window.p50_ms:.1f}ms  "
            f"p99 {window.p99_ms:.1f}ms  errors {errors}"
        )
