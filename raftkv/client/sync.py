"""Client: the blocking client, a thin shell around AsyncClient on a private event-loop thread.

Rules:
- No logic of its own: every method submits the AsyncClient coroutine to the private loop and
  waits, so routing, retries and sessions exist once (in ``aio.py``).
- The loop thread is a daemon and is stopped by :meth:`close` (or leaving a ``with`` block).
- The client is safe to share between threads: all of its state lives on the loop thread.
- If the waiting thread is interrupted (KeyboardInterrupt), the operation is cancelled on the loop.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from raftkv.client._batcher import DEFAULT_BATCH_OPS, DEFAULT_BATCHES_IN_FLIGHT
from raftkv.client._members import MemberList
from raftkv.client._scan import ScanState
from raftkv.client._session import DEFAULT_SESSION_WINDOW
from raftkv.client.aio import AsyncClient
from raftkv.client.credentials import ClientTls
from raftkv.client.types import (
    DEFAULT_MAX_KEY_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    BytesLike,
    NodeStatus,
    ScanPage,
    SnapshotInfo,
)

__all__ = ["Client"]

T = TypeVar("T")


_DRAIN_S = 1.0
"""How long closing waits for grpc's own tasks to end before cancelling them."""


class Client:
    """A blocking raftkv client; the same methods and arguments as :class:`AsyncClient`.

    ``Client(["127.0.0.1:7001", "127.0.0.1:7002"], timeout=5.0)``; the keyword arguments are
    AsyncClient's. One thread's calls go one at a time, so each leaves at once as its own unary
    call; calls from several threads sharing the client are coalesced like AsyncClient's.
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        timeout: float = 5.0,
        *,
        attempt_timeout: float = 2.0,
        max_key_bytes: int | None = DEFAULT_MAX_KEY_BYTES,
        max_value_bytes: int | None = DEFAULT_MAX_VALUE_BYTES,
        backoff_base: float = 0.02,
        backoff_max: float = 1.0,
        client_id: int | None = None,
        rng: random.Random | None = None,
        channel_options: list[tuple[str, Any]] | None = None,
        session_window: int = DEFAULT_SESSION_WINDOW,
        tls: ClientTls | None = None,
        token: str | None = None,
        coalesce: bool = True,
        max_batches_in_flight: int = DEFAULT_BATCHES_IN_FLIGHT,
        max_batch_ops: int = DEFAULT_BATCH_OPS,
    ) -> None:
        # Build the async client first so bad arguments raise before a thread exists.
        self._aio = AsyncClient(
            endpoints,
            timeout,
            attempt_timeout=attempt_timeout,
            max_key_bytes=max_key_bytes,
            max_value_bytes=max_value_bytes,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            client_id=client_id,
            rng=rng,
            channel_options=channel_options,
            session_window=session_window,
            tls=tls,
            token=token,
            coalesce=coalesce,
            max_batches_in_flight=max_batches_in_flight,
            max_batch_ops=max_batch_ops,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="raftkv-client", daemon=True
        )
        self._thread.start()
        self._closed = False

    @property
    def endpoints(self) -> list[str]:
        return self._aio.endpoints

    @property
    def leader(self) -> str | None:
        return self._aio.leader

    @property
    def client_id(self) -> int:
        return self._aio.client_id

    @property
    def timeout(self) -> float:
        return self._aio.timeout

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("the client is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def get(
        self, key: BytesLike, *, stale: bool = False, timeout: float | None = None
    ) -> bytes | None:
        return self._run(self._aio.get(key, stale=stale, timeout=timeout))

    def put(
        self,
        key: BytesLike,
        value: BytesLike,
        *,
        return_previous: bool = False,
        timeout: float | None = None,
    ) -> bytes | None:
        return self._run(
            self._aio.put(key, value, return_previous=return_previous, timeout=timeout)
        )

    def delete(self, key: BytesLike, *, timeout: float | None = None) -> bool:
        return self._run(self._aio.delete(key, timeout=timeout))

    def cas(
        self,
        key: BytesLike,
        expected: BytesLike | None,
        new: BytesLike,
        *,
        timeout: float | None = None,
    ) -> bool:
        return self._run(self._aio.cas(key, expected, new, timeout=timeout))

    def scan_page(
        self,
        prefix: BytesLike = b"",
        *,
        start: BytesLike | None = None,
        end: BytesLike | None = None,
        limit: int = 0,
        stale: bool = False,
        timeout: float | None = None,
    ) -> ScanPage:
        return self._run(
            self._aio.scan_page(
                prefix, start=start, end=end, limit=limit, stale=stale, timeout=timeout
            )
        )

    def scan(
        self,
        prefix: BytesLike = b"",
        *,
        start: BytesLike | None = None,
        end: BytesLike | None = None,
        limit: int | None = None,
        stale: bool = False,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs in key order; pages are fetched lazily as the iterator advances."""
        state = ScanState(limit, page_size, start)
        while (page_limit := state.next_limit()) is not None:
            page = self._run(
                self._aio.scan_page(
                    prefix,
                    start=state.start,
                    end=end,
                    limit=page_limit,
                    stale=stale,
                    timeout=timeout,
                )
            )
            yield from state.take(page)

    def status(self, *, timeout: float | None = None) -> NodeStatus:
        return self._run(self._aio.status(timeout=timeout))

    def status_all(self, *, timeout: float | None = None) -> list[NodeStatus]:
        return self._run(self._aio.status_all(timeout=timeout))

    def transfer_leader(self, node_id: int, *, timeout: float | None = None) -> int:
        return self._run(self._aio.transfer_leader(node_id, timeout=timeout))

    def member_list(self, *, timeout: float | None = None) -> MemberList:
        return self._run(self._aio.member_list(timeout=timeout))

    def member_add(
        self, node_id: int, address: str, *, learner: bool = False, timeout: float | None = None
    ) -> MemberList:
        return self._run(self._aio.member_add(node_id, address, learner=learner, timeout=timeout))

    def member_promote(self, node_id: int, *, timeout: float | None = None) -> MemberList:
        return self._run(self._aio.member_promote(node_id, timeout=timeout))

    def member_remove(self, node_id: int, *, timeout: float | None = None) -> MemberList:
        return self._run(self._aio.member_remove(node_id, timeout=timeout))

    def snapshot_save(self, path: str, *, timeout: float | None = None) -> SnapshotInfo:
        return self._run(self._aio.snapshot_save(path, timeout=timeout))

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._run(_close(self._aio))
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _close(client: AsyncClient) -> None:
    """Close ``client``, then let the loop's other tasks end, as ``asyncio.run`` does before
    closing its loop: grpc finishes each cancelled call (the client's streams) on a task of its
    own, and a loop closed first logs "Task was destroyed but it is pending!"."""
    await client.close()
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        await asyncio.wait(others, timeout=_DRAIN_S)
        for task in others:
            task.cancel()
