"""Local reads for the KV service: batched, on a reader thread of their own.

Rules: every get queued during one event-loop turn is served by ONE job on the reader thread,
so reads neither block the loop nor wait behind the storage thread's fsyncs; the state machine
guarantees such reads are safe alongside apply (see :mod:`raftkv.node.kv_adapter`).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from raftkv.node.protocols import StateMachine


class Reader:
    def __init__(self, state: StateMachine) -> None:
        self._state = state
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raftkv-read")
        self._pending: list[tuple[bytes, asyncio.Future[bytes | None]]] = []

    async def get(self, key: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes | None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((key, fut))
        return await fut

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        keys = [key for key, _ in batch]
        job = asyncio.wrap_future(self._pool.submit(self._state.get_many, keys))
        job.add_done_callback(lambda done: _deliver(batch, done))

    async def run(self, fn: Any, *args: Any) -> Any:
        """Any other read (a scan page) on the reader thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _deliver(
    batch: list[tuple[bytes, asyncio.Future[bytes | None]]], done: asyncio.Future[Any]
) -> None:
    if done.cancelled() or done.exception() is not None:
        exc = done.exception() if not done.cancelled() else asyncio.CancelledError()
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc or RuntimeError("read failed"))
        return
    for (_, fut), value in zip(batch, done.result(), strict=True):
        if not fut.done():
            fut.set_result(value)
