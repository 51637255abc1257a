"""Forwarding client requests from a follower to the leader over gRPC.

Rules: one channel per leader address, reused; the caller's remaining deadline goes along; the
leader's status and message come back unchanged (so a client sees the leader's own answer);
channels use the node's TLS credentials when it has them, and calls carry the caller's bearer
token (:func:`raftkv.server.auth.outgoing_metadata`).
KV operations are coalesced: at most ``batches_in_flight`` KV.Batch calls per leader, and
everything that queued up meanwhile leaves in the next one (at most ``batch_ops``; both from the
validated :class:`~raftkv.server.settings.Limits`), so a follower under load spends one call per
batch rather than one per operation.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import grpc

from raftkv.pb import kv_pb2, kv_pb2_grpc
from raftkv.server.auth import outgoing_metadata
from raftkv.server.context import FORWARDED_KEY
from raftkv.server.errors import Overloaded


class ForwardedError(Exception):
    """The leader answered with an error status; relay it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}
"""A status code number (as an OpError carries it) -> the grpc.StatusCode."""
OP_FIELDS = {
    "Get": "get",
    "Put": "put",
    "Delete": "delete",
    "CompareAndSwap": "compare_and_swap",
}
"""A KV method -> its BatchOp / BatchResult field."""


@dataclass(slots=True)
class _Op:
    field: str
    request: Any
    deadline: float
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _LeaderQueue:
    pending: deque[_Op] = dataclass_field(default_factory=deque)
    in_flight: int = 0


class Forwarder:
    def __init__(
        self,
        options: list[tuple[str, int]],
        *,
        batch_ops: int,
        batches_in_flight: int,
        max_queue: int,
        credentials: Any = None,
    ) -> None:
        self._options = options
        self._credentials = credentials
        self._max_queue = max_queue
        self._batch_ops = batch_ops
        self._batches_in_flight = batches_in_flight
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._queues: dict[str, _LeaderQueue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address, options=self._options)
            else:
                channel = grpc.aio.secure_channel(address, self._credentials, options=self._options)
            self._channels[address] = channel
        return channel

    async def call(
        self, service: str, method: str, address: str, request: Any, deadline: float
    ) -> Any:
        channel = self._channel(address)
        stub_class: Any = kv_pb2_grpc.KVStub if service == "KV" else kv_pb2_grpc.ClusterStub
        stub = stub_class(channel)
        timeout = max(0.001, deadline - time.monotonic())
        try:
            return await getattr(stub, method)(
                request, timeout=timeout, metadata=((FORWARDED_KEY, "1"), *outgoing_metadata())
            )
        except grpc.aio.AioRpcError as exc:
            raise ForwardedError(exc.code(), exc.details() or exc.code().name) from None

    async def forward_op(self, method: str, request: Any, address: str, deadline: float) -> Any:
        """One KV operation, sent to the leader at ``address`` in the next batch."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(address, _LeaderQueue())
        if len(queue.pending) >= self._max_queue:
            raise Overloaded(
                f"{len(queue.pending)} operations are waiting to be forwarded to the leader "
                "(limit max_forward_queue); retry with backoff"
            )
        queue.pending.append(_Op(OP_FIELDS[method], request, deadline, future))
        self._send_batches(address, queue)
        async with asyncio.timeout_at(deadline):
            return await future

    def _send_batches(self, address: str, queue: _LeaderQueue) -> None:
        while queue.pending and queue.in_flight < self._batches_in_flight:
            ops: list[_Op] = []
            while queue.pending and len(ops) < self._batch_ops:
                op = queue.pending.popleft()
                if not op.future.done():  # its caller gave up: it was never sent
                    ops.append(op)
            if not ops:
                return
            queue.in_flight += 1
            task = asyncio.create_task(self._send(address, queue, ops))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, address: str, queue: _LeaderQueue, ops: list[_Op]) -> None:
        request = kv_pb2.BatchRequest(ops=[kv_pb2.BatchOp(**{op.field: op.request}) for op in ops])
        timeout = max(0.001, max(op.deadline for op in ops) - time.monotonic())
        stub = kv_pb2_grpc.KVStub(self._channel(address))  # type: ignore[no-untyped-call]
        try:
            metadata = ((FORWARDED_KEY, "1"), *outgoing_metadata())
            response = await stub.Batch(request, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            error = ForwardedError(exc.code(), exc.details() or exc.code().name)
            for op in ops:
                if not op.future.done():
                    op.future.set_exception(error)
        else:
            for op, result in zip(ops, response.results, strict=False):
                if op.future.done():
                    continue
                kind = result.WhichOneof("result")
                if kind == "error":
                    code = STATUS_CODES.get(result.error.code, grpc.StatusCode.UNKNOWN)
                    op.future.set_exception(ForwardedError(code, result.error.message))
                elif kind is None:
                    op.future.set_exception(
                        ForwardedError(grpc.StatusCode.INTERNAL, "the leader sent no result")
                    )
                else:
                    op.future.set_result(getattr(result, kind))
            for op in ops[len(response.results) :]:
                if not op.future.done():
                    op.future.set_exception(
                        ForwardedError(grpc.StatusCode.INTERNAL, "the leader sent too few results")
                    )
        finally:
            queue.in_flight -= 1
            self._send_batches(address, queue)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()
