"""Coalescing: concurrent KV point operations to one address leave together as one batch.

Rules (the flush policy mirrors the server's forwarder, raftkv/server/forward.py):
- One queue per address. At most ``max_in_flight`` calls (batches) are outstanding per address;
  everything queued meanwhile leaves in the next one, at most ``max_ops`` operations and about
  ``max_bytes`` of requests per call.
- No timers: with nothing in flight an operation leaves at once, on its caller's own task, so a
  lone client's latency does not grow. Otherwise the queue is flushed once the operations of
  this event-loop iteration are in (``loop.call_soon``), and again whenever a call returns.
- A batch, of one operation or many, is one message on the address's ``KV.BatchStream``
  (``_stream``): cheaper than any unary call. A server without the stream gets ``KV.Batch``
  calls, and a lone operation its own unary call. The items are the callers' very requests (a
  write's session is inside), so retries and at-most-once stay per operation in
  ``AsyncClient._retry``.
- Each operation gets exactly what a unary attempt gives: its response and the leader hint, or
  :class:`AttemptFailed`. An item's OpError is a raftkv server's own answer (``server_spoke``),
  with the hint the batch call carried; a failure of the whole call is every item's failure.
  A batch the server refuses for its size (too many operations, a message too large) is retried
  as unary calls, each within its operation's time.
- Each operation keeps its own attempt timeout: the batch's deadline is the latest of its items';
  an item whose time runs out fails with DEADLINE_EXCEEDED (ambiguous, as a unary timeout), and
  if it was still queued it is never sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.message import Message

from raftkv.client._stream import BatchStreams
from raftkv.client._transport import CLIENT_CLOSED, RPCS, AttemptFailed, ChannelPool, Rpc
from raftkv.pb import kv_pb2

__all__ = [
    "BATCHABLE",
    "DEFAULT_BATCHES_IN_FLIGHT",
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_BATCH_OPS",
    "Batcher",
]

Resp = TypeVar("Resp", bound=Message)

DEFAULT_BATCHES_IN_FLIGHT = 4
DEFAULT_BATCH_OPS = 256  # the server accepts up to max_batch_ops (1024 by default)
DEFAULT_BATCH_BYTES = 4 << 20  # requests per batch; the server's Batch limit is 64 MiB

BATCH: Final[Rpc[Any, kv_pb2.BatchResponse]] = Rpc("/raftkv.v1.KV/Batch", kv_pb2.BatchResponse)
# The RPCs that can ride in a batch, and their BatchOp / BatchResult field.
_RPC_OF_FIELD: Final[dict[str, Rpc[Any, Any]]] = {
    "get": RPCS.GET,
    "put": RPCS.PUT,
    "delete": RPCS.DELETE,
    "compare_and_swap": RPCS.CAS,
}
BATCHABLE: Final[dict[str, str]] = {rpc.path: name for name, rpc in _RPC_OF_FIELD.items()}
# Whole-batch refusals that say "smaller, please": nothing ran, or a write's session makes its
# unary retry safe (a response too large to send).
_SIZE_REFUSALS = ("max_batch_ops", "larger than max", "message too large")


class _Unary:
    """The item's batch was refused for its size: send the item on its own."""


_UNARY = _Unary()
_Result = tuple[Message, str | None] | _Unary


@dataclass(slots=True)
class _Item:
    field: str
    request: Message
    size_bytes: int
    deadline: float
    future: asyncio.Future[_Result]


@dataclass(slots=True)
class _Queue:
    pending: deque[_Item] = field(default_factory=deque)
    in_flight: int = 0
    flush_scheduled: bool = False


class Batcher:
    """Per-address queues of KV point operations, sent as KV.Batch calls through ``pool``."""

    def __init__(
        self,
        pool: ChannelPool,
        *,
        max_in_flight: int = DEFAULT_BATCHES_IN_FLIGHT,
        max_ops: int = DEFAULT_BATCH_OPS,
        max_bytes: int = DEFAULT_BATCH_BYTES,
        stream: bool = True,
    ) -> None:
        if max_in_flight < 1 or max_ops < 1 or max_bytes < 1:
            raise ValueError("batches in flight, batch operations and batch bytes must be >= 1")
        self._pool = pool
        self._streams = BatchStreams(pool) if stream else None
        self._max_in_flight = max_in_flight
        self._max_ops = max_ops
        self._max_bytes = max_bytes
        self._queues: dict[str, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(
        self, address: str, rpc: Rpc[Any, Resp], request: Message, timeout_s: float
    ) -> tuple[Resp, str | None]:
        """One attempt of ``request`` at ``address``, like ``ChannelPool.unary``."""
        queue = self._queues.get(address)
        if queue is None:
            queue = self._queues[address] = _Queue()
        if queue.in_flight == 0 and not queue.pending and not queue.flush_scheduled:
            # Nothing else in flight: it leaves at once, on the caller's own task (no task or
            # future hand-off, which a lone client would pay on every operation).
            queue.in_flight += 1
            try:
                field = BATCHABLE[rpc.path]
                answer = await self._on_stream(address, [(field, request)], timeout_s)
                if answer is None:
                    return await self._pool.unary(address, rpc, request, timeout_s)
                response, hint = _outcome(field, answer, 0)
                assert isinstance(response, rpc.response_type)
                return response, hint
            finally:
                queue.in_flight -= 1
                if queue.pending:  # queued while every call slot was taken
                    self._schedule_flush(address, queue)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Result] = loop.create_future()
        deadline = loop.time() + timeout_s
        item = _Item(BATCHABLE[rpc.path], request, request.ByteSize(), deadline, future)
        queue.pending.append(item)
        self._schedule_flush(address, queue)
        try:
            async with asyncio.timeout_at(deadline):
                result = await future
        except TimeoutError:
            raise AttemptFailed(
                "DEADLINE_EXCEEDED", "Deadline Exceeded", leader_hint=None, server_spoke=False
            ) from None
        if isinstance(result, _Unary):
            return await self._pool.unary(address, rpc, request, max(0.001, deadline - loop.time()))
        response, hint = result
        assert isinstance(response, rpc.response_type)
        return response, hint

    async def close(self) -> None:
        """Stop the calls in flight; queued and unanswered attempts fail as CANCELLED."""
        for queue in self._queues.values():
            while queue.pending:
                _fail(queue.pending.popleft(), CLIENT_CLOSED)
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._streams is not None:
            await self._streams.close()

    def _streams_for(self, address: str) -> BatchStreams | None:
        """The streams, if batches to ``address`` go on one."""
        if self._streams is None or address in self._streams.unsupported:
            return None
        return self._streams

    async def _on_stream(
        self, address: str, ops: list[tuple[str, Message]], timeout_s: float
    ) -> tuple[kv_pb2.BatchResponse, str | None] | None:
        """One batch of ``(field, request)`` ops on the address's stream; None if its server
        has none (then nothing ran there: the stream was refused)."""
        streams = self._streams_for(address)
        if streams is None:
            return None
        request = kv_pb2.StreamBatchRequest()
        _fill(request.batch, ops)
        try:
            return await streams.exchange(address, request, timeout_s)
        except AttemptFailed as failure:
            if failure.code != "UNIMPLEMENTED":
                raise
        return None

    async def _exchange(
        self, address: str, ops: list[tuple[str, Message]], timeout_s: float
    ) -> tuple[kv_pb2.BatchResponse, str | None]:
        """One batch of ``(field, request)`` ops: on the address's stream, else as KV.Batch."""
        answer = await self._on_stream(address, ops, timeout_s)
        if answer is not None:
            return answer
        batch = kv_pb2.BatchRequest()
        _fill(batch, ops)
        return await self._pool.unary(address, BATCH, batch, timeout_s)

    def _schedule_flush(self, address: str, queue: _Queue) -> None:
        if not queue.flush_scheduled and queue.in_flight < self._max_in_flight:
            queue.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, address, queue)

    def _flush(self, address: str, queue: _Queue) -> None:
        queue.flush_scheduled = False
        self._send_batches(address, queue)

    def _send_batches(self, address: str, queue: _Queue) -> None:
        while queue.pending and queue.in_flight < self._max_in_flight:
            items = self._take(queue.pending)
            if not items:
                return
            queue.in_flight += 1
            task = asyncio.create_task(self._send(address, queue, items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self, pending: deque[_Item]) -> list[_Item]:
        items: list[_Item] = []
        size_bytes = 0
        while pending and len(items) < self._max_ops:
            item = pending[0]
            if items and size_bytes + item.size_bytes > self._max_bytes:
                break
            pending.popleft()
            if not item.future.done():  # its caller gave up: it was never sent
                items.append(item)
                size_bytes += item.size_bytes
        return items

    async def _send(self, address: str, queue: _Queue, items: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        timeout_s = max(0.001, max(item.deadline for item in items) - loop.time())
        try:
            if len(items) == 1 and self._streams_for(address) is None:
                await _send_one(self._pool, address, items[0], timeout_s)
            else:
                await self._send_batch(address, items, timeout_s)
        except BaseException:
            for item in items:
                _fail(item, CLIENT_CLOSED)
            raise
        finally:
            queue.in_flight -= 1
            # After the callers this call answered have queued their next operations.
            self._schedule_flush(address, queue)

    async def _send_batch(self, address: str, items: list[_Item], timeout_s: float) -> None:
        try:
            answer = await self._exchange(
                address, [(item.field, item.request) for item in items], timeout_s
            )
        except AttemptFailed as failure:
            refused_for_size = failure.code in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED") and any(
                marker in failure.details.lower() for marker in _SIZE_REFUSALS
            )
            for refused in items:
                if refused_for_size:
                    _resolve(refused, _UNARY)
                else:
                    _fail(refused, failure)
            return
        for n, item in enumerate(items):
            try:
                outcome = _outcome(item.field, answer, n)
            except AttemptFailed as op_failure:
                _fail(item, op_failure)
            else:
                _resolve(item, outcome)


async def _send_one(pool: ChannelPool, address: str, item: _Item, timeout_s: float) -> None:
    rpc = _RPC_OF_FIELD[item.field]
    try:
        result: _Result = await pool.unary(address, rpc, item.request, timeout_s)
    except AttemptFailed as failure:
        _fail(item, failure)
    else:
        _resolve(item, result)


def _fill(batch: kv_pb2.BatchRequest, ops: list[tuple[str, Message]]) -> None:
    for field_name, request in ops:
        getattr(batch.ops.add(), field_name).CopyFrom(request)


def _outcome(
    field_name: str, answer: tuple[kv_pb2.BatchResponse, str | None], n: int
) -> tuple[Message, str | None]:
    """Op ``n``'s response and the hint, or its AttemptFailed."""
    response, hint = answer
    if n >= len(response.results):
        raise _server_error("the server sent too few batch results", hint)
    result = response.results[n]
    kind = result.WhichOneof("result")
    if kind == field_name:
        return getattr(result, kind), hint
    if kind == "error":
        raise _op_failed(result.error, hint)
    raise _server_error(f"the server answered a {field_name} with {kind}", hint)


def _resolve(item: _Item, result: _Result) -> None:
    if not item.future.done():
        item.future.set_result(result)


def _fail(item: _Item, failure: AttemptFailed) -> None:
    if not item.future.done():
        item.future.set_exception(failure.copy())


def _op_failed(error: kv_pb2.OpError, hint: str | None) -> AttemptFailed:
    code = _CODE_NAMES.get(error.code, "UNKNOWN")
    return AttemptFailed(code, error.message, leader_hint=hint, server_spoke=True)


def _server_error(details: str, hint: str | None) -> AttemptFailed:
    return AttemptFailed("INTERNAL", details, leader_hint=hint, server_spoke=True)


_CODE_NAMES: Final[dict[int, str]] = {code.value[0]: code.name for code in grpc.StatusCode}
