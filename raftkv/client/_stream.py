"""KV.BatchStream: one long-lived stream per node carries the client's batches (proto/kv.proto).

A message on an open stream costs a fraction of a unary call's setup (headers, trailers, a new
HTTP/2 stream), which is most of a lone operation's time; so the batcher sends every batch, a
lone operation included, this way.

Rules:
- Opened lazily by the first batch for an address and kept open; a stream that ended is replaced
  by the next batch. When a stream ends, every batch waiting on it fails with the stream's status,
  leader hint and ``server_spoke``, exactly as its unary call would have (AttemptFailed).
- Each batch has an id and its own timeout: the server gets it as ``timeout_ms``; the client stops
  waiting at it (DEADLINE_EXCEEDED, as ambiguous as a unary timeout) and ignores a late answer.
- grpc.aio takes one write at a time: writes queue on a lock. One reader task per stream matches
  answers to waiting batches by id.
- A server without the method (UNIMPLEMENTED) is remembered; the batcher then uses KV.Batch.
- Closing half-closes each stream and waits (at most CLOSE_WAIT_S) for its server to end it, so
  every grpc operation of the call completes on the running loop. A call cancelled with
  operations in flight has them completed later by grpc's one poller per process, on whichever
  loop it wakes next; if the call's own loop is closed by then (``asyncio.run`` returned, a
  blocking Client closed), the loop handling them logs "RuntimeError: Event loop is closed".
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import grpc.aio

from raftkv.client._transport import (
    CLIENT_CLOSED,
    AttemptFailed,
    ChannelPool,
    failed_attempt,
    read_metadata,
)
from raftkv.pb import kv_pb2

__all__ = ["BatchStreams"]

PATH = "/raftkv.v1.KV/BatchStream"
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
CLOSE_WAIT_S = 1.0
"""How long closing waits for the servers to end their streams before cancelling them."""
_BROKEN = AttemptFailed(
    "UNAVAILABLE", "the batch stream broke", leader_hint=None, server_spoke=False
)


class _Stream:
    def __init__(self, call: Any) -> None:
        self._call = call
        self._pending: dict[int, asyncio.Future[kv_pb2.StreamBatchResponse]] = {}
        self._next_id = 1
        self._write_lock = asyncio.Lock()
        self._accepted: bool | None = None
        self.failure: AttemptFailed | None = None
        """Set once the stream has ended: why (what its waiting batches failed with)."""
        self._reader = asyncio.create_task(self._read(), name="raftkv-client-batch-stream")

    async def exchange(
        self, request: kv_pb2.StreamBatchRequest, timeout_s: float
    ) -> kv_pb2.StreamBatchResponse:
        ident = self._next_id
        self._next_id += 1
        request.id = ident
        request.timeout_ms = max(1, round(timeout_s * 1000))
        future: asyncio.Future[kv_pb2.StreamBatchResponse] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[ident] = future
        try:
            async with asyncio.timeout(timeout_s):
                async with self._write_lock:
                    if self._accepted is None:
                        # A raftkv node answers a new stream with its metadata at once. Anything
                        # else is a refusal (UNIMPLEMENTED, UNAUTHENTICATED) whose status follows:
                        # a write racing it would make grpc report INTERNAL in its place.
                        _, spoke = read_metadata(await self._call.initial_metadata())
                        self._accepted = spoke
                    if not self._accepted or self._call.done():
                        await asyncio.wait([self._reader])  # the reader fails this batch
                    else:
                        try:
                            await self._call.write(request)
                        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                            await asyncio.wait([self._reader])  # the reader fails this batch
                return await future
        except TimeoutError:
            raise AttemptFailed(
                "DEADLINE_EXCEEDED", "Deadline Exceeded", leader_hint=None, server_spoke=False
            ) from None
        finally:
            del self._pending[ident]
            if future.done() and not future.cancelled():
                future.exception()  # retrieved here, whether or not it was raised above

    async def _read(self) -> None:
        failure = AttemptFailed(
            "UNAVAILABLE", "the server ended the batch stream", leader_hint=None, server_spoke=False
        )
        try:
            async for response in self._call:
                future = self._pending.get(response.id)
                if future is not None and not future.done():
                    future.set_result(response)
        except grpc.aio.AioRpcError as error:
            # A stream's end is the transport's (or the interceptor's) doing, never a batch's
            # answer: no server vouched that a batch in flight did not run (the node's metadata
            # at the stream's start does not count). grpc reports a write that raced the
            # stream's end as INTERNAL, and may put that in place of the stream's own status:
            # that too is a broken stream.
            seen = failed_attempt(error)
            failure = _BROKEN
            if seen.code != "INTERNAL":
                failure = AttemptFailed(
                    seen.code, seen.details, leader_hint=seen.leader_hint, server_spoke=False
                )
        except asyncio.CancelledError:
            failure = CLIENT_CLOSED
            raise
        finally:
            self.failure = failure
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(failure.copy())

    @property
    def ended(self) -> bool:
        return self.failure is not None or self._call.done()

    async def close(self) -> None:
        """End the stream: half-close it and let the server finish it (after answering what
        it was sent); cancel it only if that does not happen within CLOSE_WAIT_S."""
        if not self.ended:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_S):
                    async with self._write_lock:
                        await self._call.done_writing()
                    await asyncio.wait([self._reader])
        self._call.cancel()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class BatchStreams:
    """One :class:`_Stream` per address, over ``pool``'s channels."""

    def __init__(self, pool: ChannelPool) -> None:
        self._pool = pool
        self._streams: dict[str, _Stream] = {}
        self.unsupported: set[str] = set()
        """Addresses whose server answered UNIMPLEMENTED (an older raftkv)."""

    async def exchange(
        self, address: str, request: kv_pb2.StreamBatchRequest, timeout_s: float
    ) -> tuple[kv_pb2.BatchResponse, str | None]:
        """One batch's answer and the leader hint, or AttemptFailed (the whole batch failed)."""
        stream = self._streams.get(address)
        if stream is None or stream.ended:
            call = self._pool.open_stream(address, PATH, kv_pb2.StreamBatchResponse)
            stream = self._streams[address] = _Stream(call)
        try:
            response = await stream.exchange(request, timeout_s)
        except AttemptFailed as failure:
            if failure.code == "UNIMPLEMENTED":
                self.unsupported.add(address)
            raise
        hint = response.leader or None
        if response.HasField("error"):
            raise AttemptFailed(
                _CODE_NAMES.get(response.error.code, "UNKNOWN"),
                response.error.message,
                leader_hint=hint,
                server_spoke=True,
            )
        return response.batch, hint

    async def close(self) -> None:
        streams, self._streams = self._streams, {}
        await asyncio.gather(*(stream.close() for stream in streams.values()))
