"""In-memory stores behind the workload Executor interface: one correct, others broken on purpose.

They exist to test the workload and checker end to end before the real server does, and to let a
chaos test check its own wiring. Each store is one dict guarded by the event loop (single thread:
an op's effect is one synchronous step, its *linearization point*), with random awaits before and
after it so concurrent ops really overlap.

Rules kept here: a ``DefiniteFailure`` is raised only *before* the effect (so "fail" is true); an
``Indeterminate`` may be raised before or after it (so "unknown" is honest).
"""

from __future__ import annotations

import asyncio
import random
import time

from .lincheck.history import OpKind, Outcome, Result, Value
from .workload import Invocation


class DefiniteFailure(Exception):
    """The store refused the op; it did not happen."""


class Indeterminate(Exception):
    """The op may or may not have happened."""


def classify(exc: BaseException) -> Outcome:
    return Outcome.FAIL if isinstance(exc, DefiniteFailure) else Outcome.UNKNOWN


class AtomicStore:
    """A correct linearizable store, with optional injected definite/indeterminate failures."""

    def __init__(
        self,
        *,
        seed: int = 0,
        max_latency_s: float = 0.003,
        p_fail: float = 0.0,
        p_unknown: float = 0.0,
    ) -> None:
        self.data: dict[str, str] = {}
        self._rng = random.Random(seed)
        self._max_latency_s = max_latency_s
        self._p_fail, self._p_unknown = p_fail, p_unknown

    async def _pause(self) -> None:
        await asyncio.sleep(self._rng.uniform(0, self._max_latency_s))

    def apply(self, inv: Invocation) -> Result:
        """The linearization point: one synchronous step on the dict."""
        current = self.data.get(inv.key)
        if inv.kind is OpKind.GET:
            return self.read(inv.key)
        if inv.kind is OpKind.PUT:
            assert inv.value is not None
            self.write(inv.key, inv.value)
            return None
        if inv.kind is OpKind.DELETE:
            self.write(inv.key, None)
            return current is not None
        swapped = current == inv.expected
        if swapped:
            assert inv.value is not None
            self.write(inv.key, inv.value)
        return swapped

    def read(self, key: str) -> Value:
        return self.data.get(key)

    def write(self, key: str, value: Value) -> None:
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value

    async def __call__(self, process: int, inv: Invocation) -> Result:
        await self._pause()
        roll = self._rng.random()
        if roll < self._p_fail:
            raise DefiniteFailure("refused")
        if roll < self._p_fail + self._p_unknown / 2:
            raise Indeterminate("lost before applying")
        result = self.apply(inv)
        await self._pause()
        if roll < self._p_fail + self._p_unknown:
            raise Indeterminate("lost after applying")
        return result


class StaleReadStore(AtomicStore):
    """Broken: reads come from a replica ``lag_s`` behind (a follower serving reads locally)."""

    def __init__(self, *, lag_s: float = 0.05, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._lag_s = lag_s
        self._log: dict[str, list[tuple[float, Value]]] = {}

    def write(self, key: str, value: Value) -> None:
        super().write(key, value)
        self._log.setdefault(key, []).append((time.monotonic(), value))

    def read(self, key: str) -> Value:
        horizon = time.monotonic() - self._lag_s
        value: Value = None
        for applied_s, logged in self._log.get(key, []):
            if applied_s > horizon:
                break
            value = logged
        return value


class LostWriteStore(AtomicStore):
    """Broken: acknowledges every ``every``-th put without applying it (an ack before commit)."""

    def __init__(self, *, every: int = 5, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._every, self._puts = every, 0

    def apply(self, inv: Invocation) -> Result:
        if inv.kind is OpKind.PUT:
            self._puts += 1
            if self._puts % self._every == 0:
                return None
        return super().apply(inv)


class StallingStore(AtomicStore):
    """Correct, but stalls for ``stall_s`` every ``period_s`` (an election): ops wait out the
    stall, so writes issued during one land after their clients timed out (unknown, yet applied)."""

    def __init__(self, *, period_s: float = 0.5, stall_s: float = 0.25, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._period_s, self._stall_s = period_s, stall_s
        self._start_s = time.monotonic()
        self.applied: set[str] = set()  # every value ever written, for tests to inspect

    def write(self, key: str, value: Value) -> None:
        super().write(key, value)
        if value is not None:
            self.applied.add(value)

    async def __call__(self, process: int, inv: Invocation) -> Result:
        # Like a server, the store goes on with an op whose client gave up (timed out): the
        # client's cancellation stops its wait, not the op. So a write issued during a stall
        # lands after its client timed out, however late the event loop runs.
        return await asyncio.shield(self._serve(inv))

    async def _serve(self, inv: Invocation) -> Result:
        await self._pause()
        phase = (time.monotonic() - self._start_s) % self._period_s
        if phase < self._stall_s:
            await asyncio.sleep(self._stall_s - phase)  # simulated unavailability
        result = self.apply(inv)
        await self._pause()
        return result
