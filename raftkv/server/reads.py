"""Local reads for the KV service: batched, on a reader thread of their own.

Rules: every get queued during one event-loop turn, single or many (a KV.Batch's), is served by
ONE job on the reader thread, so reads neither block the loop nor wait behind the storage
thread's fsyncs; the state machine guarantees such reads are safe alongside apply (see
:mod:`raftkv.node.kv_adapter`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from raftkv.node.protocols import StateMachine

_ONE = -1
"""A waiter's count for :meth:`Reader.get` (one value, not a list)."""


class Reader:
    def __init__(self, state: StateMachine) -> None:
        self._state = state
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raftkv-read")
        self._keys: list[bytes] = []
        self._waiters: list[tuple[asyncio.Future[Any], int, int]] = []
        """(future, first key's position in ``_keys``, how many keys or ``_ONE``)."""
        self.jobs = 0
        """Reader-thread jobs run for gets so far (tests check that batches share one)."""

    async def get(self, key: bytes) -> bytes | None:
        fut = self._queue(key, _ONE)
        value: bytes | None = await fut
        return value

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Each key's value (None: missing), in order, read in one job with any other gets."""
        if not keys:
            return []
        fut = self._queue(keys, len(keys))
        values: list[bytes | None] = await fut
        return values

    def _queue(self, keys: bytes | Sequence[bytes], count: int) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._waiters:
            loop.call_soon(self._flush)
        self._waiters.append((fut, len(self._keys), count))
        if isinstance(keys, bytes):
            self._keys.append(keys)
        else:
            self._keys.extend(keys)
        return fut

    def _flush(self) -> None:
        keys, waiters = self._keys, self._waiters
        self._keys, self._waiters = [], []
        self.jobs += 1
        job = asyncio.wrap_future(self._pool.submit(self._state.get_many, keys))
        job.add_done_callback(lambda done: _deliver(waiters, done))

    async def run(self, fn: Any, *args: Any) -> Any:
        """Any other read (a scan page) on the reader thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _deliver(
    waiters: list[tuple[asyncio.Future[Any], int, int]], done: asyncio.Future[Any]
) -> None:
    if done.cancelled() or done.exception() is not None:
        exc = done.exception() if not done.cancelled() else asyncio.CancelledError()
        for fut, _, _ in waiters:
            if not fut.done():
                fut.set_exception(exc or RuntimeError("read failed"))
        return
    values = done.result()
    for fut, first, count in waiters:
        if not fut.done():
            fut.set_result(values[first] if count == _ONE else values[first : first + count])
