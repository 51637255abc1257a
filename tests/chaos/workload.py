"""The client side of a chaos run: concurrent get/put/cas/delete clients, recorded as a history.

Jepsen's split: this module is the *generator* (what clients do) and the *recorder*; the nemesis
(netns, signals) and the checker (lincheck) live elsewhere. The store is reached only through an
``Executor`` callable, so the real raftkv client plugs in later and tests use in-memory fakes.

Rules kept here:
- Every written value is unique in the run (``w<worker>.<n>``), so a read names the write it saw.
- A small key set, so clients contend on the same registers.
- An exception becomes ``fail`` (definitely not applied) or ``info`` (unknown) via the passed-in
  classifier; a client-side timeout is always ``info`` (the write may still land).
- After an ``info`` outcome the worker continues as a new process id, as in Jepsen: a process
  with an operation that may still be in flight must not look sequential.
- Bounded: each op by ``op_timeout_s``, each worker by ``max_ops_per_client`` and the run by
  ``duration_s`` or a stop event.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .lincheck.history import History, OpKind, Outcome, Recorder, Result, Value


@dataclass(frozen=True, slots=True, kw_only=True)
class Invocation:
    """What a client asks the store to do (the executor's input)."""

    kind: OpKind
    key: str
    value: Value = None  # put: value to write; cas: new value
    expected: Value = None  # cas: expected current value, None = absent


# (process id, invocation) -> result: get -> str | None; put -> None; cas -> swapped (bool);
# delete -> existed (bool). Raise to report a failure; the classifier decides fail vs unknown.
Executor = Callable[[int, Invocation], Awaitable[Result]]
Classifier = Callable[[BaseException], Outcome]


def classify_all_unknown(exc: BaseException) -> Outcome:
    """The safe default: without knowledge of the error, a write may have happened."""
    return Outcome.UNKNOWN


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    keys: Sequence[str] = ("k0", "k1", "k2", "k3", "k4")
    clients: int = 5
    duration_s: float = 10.0
    max_ops_per_client: int = 100_000
    op_timeout_s: float = 2.0
    # Relative weights of the op kinds.
    mix: Mapping[OpKind, float] = field(
        default_factory=lambda: {
            OpKind.GET: 0.4,
            OpKind.PUT: 0.25,
            OpKind.CAS: 0.25,
            OpKind.DELETE: 0.1,
        }
    )
    seed: int = 0
    think_s: float = 0.0  # pause between a worker's ops (pacing only)


class _Worker:
    def __init__(self, index: int, config: WorkloadConfig, processes: itertools.count[int]) -> None:
        self.index = index
        self.process = index
        self._processes = processes
        self._config = config
        self._rng = random.Random(f"{config.seed}/{index}")
        self._kinds = list(config.mix)
        self._weights = [config.mix[k] for k in self._kinds]
        self._written = itertools.count()
        self._last_seen: dict[str, Value] = {}  # the latest value this worker saw per key

    def next_invocation(self) -> Invocation:
        kind = self._rng.choices(self._kinds, self._weights)[0]
        key = self._rng.choice(list(self._config.keys))
        if kind is OpKind.GET or kind is OpKind.DELETE:
            return Invocation(kind=kind, key=key)
        value = f"w{self.index}.{next(self._written)}"
        if kind is OpKind.PUT:
            return Invocation(kind=kind, key=key, value=value)
        # Expect what we last saw (often still current: contention makes it interesting), or
        # absence now and then.
        expected = self._last_seen.get(key) if self._rng.random() < 0.8 else None
        return Invocation(kind=kind, key=key, value=value, expected=expected)

    def observe(self, inv: Invocation, result: Result) -> None:
        if inv.kind is OpKind.GET:
            self._last_seen[inv.key] = result if isinstance(result, str) else None
        elif inv.kind is OpKind.PUT or (inv.kind is OpKind.CAS and result is True):
            self._last_seen[inv.key] = inv.value
        elif inv.kind is OpKind.DELETE:
            self._last_seen[inv.key] = None

    def crash(self) -> None:
        """After an unknown outcome: continue under a fresh process id."""
        self.process = next(self._processes)


def _check_result(inv: Invocation, result: Result) -> Result:
    """Executor results are harness code: a wrong type is a bug to crash on, not an outcome."""
    if inv.kind is OpKind.GET and not (result is None or isinstance(result, str)):
        raise TypeError(f"executor returned {result!r} for get; want str or None")
    if inv.kind in (OpKind.CAS, OpKind.DELETE) and not isinstance(result, bool):
        raise TypeError(f"executor returned {result!r} for {inv.kind.value}; want bool")
    return None if inv.kind is OpKind.PUT else result


async def perform(
    executor: Executor,
    recorder: Recorder,
    process: int,
    inv: Invocation,
    *,
    classify: Classifier = classify_all_unknown,
    timeout_s: float = 2.0,
) -> tuple[Outcome, Result]:
    """Run one invocation through the executor and record it; returns (outcome, result)."""
    op_id = recorder.invoke(
        process=process, kind=inv.kind, key=inv.key, value=inv.value, expected=inv.expected
    )
    try:
        raw = await asyncio.wait_for(executor(process, inv), timeout_s)
    except TimeoutError as exc:
        recorder.complete(op_id, Outcome.UNKNOWN, error=f"timeout after {timeout_s}s: {exc!r}")
        return Outcome.UNKNOWN, None
    except asyncio.CancelledError:
        recorder.complete(op_id, Outcome.UNKNOWN, error="cancelled")
        raise
    except Exception as exc:
        outcome = classify(exc)
        if outcome is Outcome.OK:
            raise ValueError(f"classifier said ok for {exc!r}: it must say fail or info") from exc
        recorder.complete(op_id, outcome, error=repr(exc))
        return outcome, None
    result = _check_result(inv, raw)
    recorder.complete(op_id, Outcome.OK, result=result)
    return Outcome.OK, result


async def run_workload(
    executor: Executor,
    config: WorkloadConfig,
    *,
    classify: Classifier = classify_all_unknown,
    recorder: Recorder | None = None,
    stop: asyncio.Event | None = None,
) -> Recorder:
    """Run ``config.clients`` concurrent workers until the duration passes or ``stop`` is set.

    Returns the recorder (pass one in to share it with ``final_reads`` or a nemesis log); call
    ``.history(seed=..., faults=...)`` on it for the History.
    """
    rec = recorder or Recorder()
    stop_event = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.duration_s
    processes = itertools.count(config.clients)

    async def work(worker: _Worker) -> None:
        for _ in range(config.max_ops_per_client):
            if stop_event.is_set() or loop.time() >= deadline:
                return
            inv = worker.next_invocation()
            outcome, result = await perform(
                executor, rec, worker.process, inv, classify=classify,
                timeout_s=config.op_timeout_s,
            )
            if outcome is Outcome.OK:
                worker.observe(inv, result)
            elif outcome is Outcome.UNKNOWN:
                worker.crash()
            if config.think_s > 0:
                await asyncio.sleep(config.think_s)

    workers = [_Worker(i, config, processes) for i in range(config.clients)]
    await asyncio.gather(*(work(w) for w in workers))
    return rec


async def final_reads(
    executor: Executor,
    recorder: Recorder,
    keys: Sequence[str],
    *,
    process: int = 1_000_000,
    timeout_s: float = 5.0,
    attempts: int = 20,
    retry_pause_s: float = 0.25,
) -> dict[str, Value]:
    """After healing: read every key until one definite read each (recorded in the history, so
    the checker proves no acknowledged write was lost). Raises TimeoutError if a key never gives
    a definite answer within ``attempts`` tries."""
    values: dict[str, Value] = {}
    for key in keys:
        for _ in range(attempts):
            outcome, result = await perform(
                executor, recorder, process, Invocation(kind=OpKind.GET, key=key),
                timeout_s=timeout_s,
            )
            if outcome is Outcome.OK:
                values[key] = result if isinstance(result, str) else None
                break
            process += 1  # an unknown read leaves this process "in flight"; move on
            await asyncio.sleep(retry_pause_s)  # pacing the retries, not synchronization
        else:
            raise TimeoutError(f"no definite final read of {key!r} in {attempts} attempts")
    return values


def summarize(history: History) -> dict[str, int]:
    """Counts by kind and outcome, e.g. {'put:ok': 120, 'cas:info': 3, ...} (for logs)."""
    counts: dict[str, int] = {}
    for op in history.ops:
        label = f"{op.kind.value}:{op.outcome.value}"
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))
