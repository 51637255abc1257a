"""The KV service: validates requests, proposes writes, serves linearizable and stale reads.

Rules:
- Limits are checked before anything else; a violation is INVALID_ARGUMENT naming the limit.
- Writes need the leader: a follower forwards them (once) to the leader it knows, waiting through
  an election within the caller's deadline.
- Linearizable reads run on any node: ReadIndex through the core, wait until applied >= that
  index, then read local state. STALE reads read local state at once.
- Every outcome is counted and timed by method and code; errors go through
  :func:`raftkv.server.errors.status_for`, the one mapping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from raftkv.metrics import Metrics
from raftkv.node.errors import NoLeader, NotLeaderError
from raftkv.node.protocols import SESSION_EXPIRED
from raftkv.pb import kv_pb2, kv_pb2_grpc
from raftkv.server.context import NodeContext, deadline_of, was_forwarded, with_deadline
from raftkv.server.errors import FailedPrecondition, InvalidArgument, status_for
from raftkv.server.forward import ForwardedError, Forwarder

log = logging.getLogger(__name__)
R = TypeVar("R")


class ServiceBase:
    service = ""

    def __init__(self, node: NodeContext, forwarder: Forwarder, metrics: Metrics | None) -> None:
        self.node = node
        self.forwarder = forwarder
        self.metrics = metrics

    async def serve(self, method: str, context: Any, handler: Callable[[float], Awaitable[R]]) -> R:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        self.node.inflight += 1
        try:
            result = await handler(deadline_of(context))
        except ForwardedError as exc:
            code = exc.code
            await self._abort(context, exc.code, exc.details)
        except Exception as exc:
            code, message = status_for(exc)
            if code == grpc.StatusCode.INTERNAL:
                log.exception("%s failed", method)
            await self._abort(context, code, message)
        finally:
            self.node.inflight -= 1
            if self.metrics is not None:
                self.metrics.on_client_request(method, code.name, time.perf_counter() - started)
        context.set_trailing_metadata(self.node.metadata())
        return result

    async def _abort(self, context: Any, code: grpc.StatusCode, message: str) -> None:
        await context.abort(code, message, self.node.metadata())

    async def on_leader(
        self,
        method: str,
        request: Any,
        forwarded: bool,
        deadline: float,
        local: Callable[[], Awaitable[R]],
    ) -> R:
        """Run ``local`` if this node leads, else forward ``request`` to the leader (KV
        operations ride the forwarder's batches; other calls go one by one)."""
        while True:
            leader = await self.node.wait_for_leader(deadline)
            if leader == self.node.settings.node_id:
                try:
                    return await local()
                except NotLeaderError:
                    continue  # lost leadership between the check and the proposal
            if forwarded:
                raise NoLeader(f"this node is not the leader (node {leader} is); ask it directly")
            address = self.node.settings.cluster[leader]
            if self.metrics is not None:
                self.metrics.forwarded.labels(method).inc()
            result: R
            if self.service == "KV":
                result = await self.forwarder.forward_op(method, request, address, deadline)
            else:
                result = await self.forwarder.call(self.service, method, address, request, deadline)
            return result


def _check_key(key: bytes, limit: int, what: str = "key") -> None:
    if not key:
        raise InvalidArgument(f"{what} must not be empty")
    if len(key) > limit:
        raise InvalidArgument(
            f"{what} is {len(key)} bytes; the limit is {limit} bytes (max_key_bytes)"
        )


def _check_value(value: bytes, limit: int, what: str = "value") -> None:
    if len(value) > limit:
        raise InvalidArgument(
            f"{what} is {len(value)} bytes; the limit is {limit} bytes (max_value_bytes)"
        )


def _check_consistency(consistency: int) -> bool:
    """True for a STALE read."""
    if consistency not in (kv_pb2.CONSISTENCY_LINEARIZABLE, kv_pb2.CONSISTENCY_STALE):
        raise InvalidArgument(f"unknown consistency {consistency} (LINEARIZABLE=0 or STALE=1)")
    return consistency == kv_pb2.CONSISTENCY_STALE


def _command(session: kv_pb2.Session, **op: Any) -> bytes:
    return kv_pb2.Command(
        client_id=session.client_id,
        sequence=session.sequence,
        issued_at_ms=int(time.time() * 1000),
        **op,
    ).SerializeToString()


class KVService(ServiceBase, kv_pb2_grpc.KVServicer):
    service = "KV"

    async def _propose(self, data: bytes, deadline: float) -> kv_pb2.CommandResult:
        outcome = await with_deadline(self.node.driver.propose(data), deadline)
        if outcome is SESSION_EXPIRED:
            raise FailedPrecondition(
                "the client session expired: this command was not applied, and whether an earlier "
                "attempt was is unknown; start a new session"
            )
        assert isinstance(outcome, kv_pb2.CommandResult), f"unexpected outcome {outcome!r}"
        return outcome

    async def _read_point(self, stale: bool, deadline: float) -> int:
        driver = self.node.driver
        if stale:
            return driver.applied_index
        while True:
            await self.node.wait_for_leader(deadline)
            try:
                index: int = await with_deadline(driver.read_index(), deadline)
                return index
            except NoLeader:
                if time_left(deadline) <= 0:
                    raise
                # Leadership is moving: wait for the change instead of spinning.
                await driver.wait_for_change(min(0.05, time_left(deadline)))

    # ---------------------------------------------------------------- operations
    async def put(self, request: kv_pb2.PutRequest, deadline: float, forwarded: bool) -> Any:
        limits = self.node.settings.limits
        _check_key(request.key, limits.max_key_bytes)
        _check_value(request.value, limits.max_value_bytes)

        async def local() -> kv_pb2.PutResponse:
            op = kv_pb2.PutOp(
                key=request.key, value=request.value, return_previous=request.return_previous
            )
            r = await self._propose(_command(request.session, put=op), deadline)
            return kv_pb2.PutResponse(
                had_previous=r.had_previous, previous=r.previous, index=r.index
            )

        return await self.on_leader("Put", request, forwarded, deadline, local)

    async def delete(self, request: kv_pb2.DeleteRequest, deadline: float, forwarded: bool) -> Any:
        _check_key(request.key, self.node.settings.limits.max_key_bytes)

        async def local() -> kv_pb2.DeleteResponse:
            data = _command(request.session, delete=kv_pb2.DeleteOp(key=request.key))
            r = await self._propose(data, deadline)
            return kv_pb2.DeleteResponse(deleted=r.ok, index=r.index)

        return await self.on_leader("Delete", request, forwarded, deadline, local)

    async def compare_and_swap(
        self, request: kv_pb2.CompareAndSwapRequest, deadline: float, forwarded: bool
    ) -> Any:
        limits = self.node.settings.limits
        _check_key(request.key, limits.max_key_bytes)
        _check_value(request.value, limits.max_value_bytes)
        _check_value(request.expected, limits.max_value_bytes, "expected value")

        async def local() -> kv_pb2.CompareAndSwapResponse:
            op = kv_pb2.CasOp(
                key=request.key,
                expected=request.expected,
                expect_absent=request.expect_absent,
                value=request.value,
            )
            r = await self._propose(_command(request.session, cas=op), deadline)
            return kv_pb2.CompareAndSwapResponse(
                swapped=r.ok, had_current=r.had_previous, current=r.previous, index=r.index
            )

        return await self.on_leader("CompareAndSwap", request, forwarded, deadline, local)

    async def get(self, request: kv_pb2.GetRequest, deadline: float, forwarded: bool) -> Any:
        _check_key(request.key, self.node.settings.limits.max_key_bytes)
        stale = _check_consistency(request.consistency)
        index = await self._read_point(stale, deadline)
        value = await self.node.reader.get(request.key)
        if value is None:
            return kv_pb2.GetResponse(found=False, index=index)
        return kv_pb2.GetResponse(found=True, value=value, index=index)

    # ---------------------------------------------------------------- RPCs
    async def Put(self, request: kv_pb2.PutRequest, context: Any) -> kv_pb2.PutResponse:
        forwarded = was_forwarded(context)
        return await self.serve("Put", context, lambda d: self.put(request, d, forwarded))

    async def Delete(self, request: kv_pb2.DeleteRequest, context: Any) -> kv_pb2.DeleteResponse:
        forwarded = was_forwarded(context)
        return await self.serve("Delete", context, lambda d: self.delete(request, d, forwarded))

    async def CompareAndSwap(
        self, request: kv_pb2.CompareAndSwapRequest, context: Any
    ) -> kv_pb2.CompareAndSwapResponse:
        forwarded = was_forwarded(context)
        return await self.serve(
            "CompareAndSwap", context, lambda d: self.compare_and_swap(request, d, forwarded)
        )

    async def Get(self, request: kv_pb2.GetRequest, context: Any) -> kv_pb2.GetResponse:
        return await self.serve("Get", context, lambda d: self.get(request, d, False))

    async def Batch(self, request: kv_pb2.BatchRequest, context: Any) -> kv_pb2.BatchResponse:
        forwarded = was_forwarded(context)
        limit = self.node.settings.limits.max_batch_ops

        async def handle(deadline: float) -> kv_pb2.BatchResponse:
            if len(request.ops) > limit:
                raise InvalidArgument(
                    f"batch of {len(request.ops)} operations; the limit is {limit} (max_batch_ops)"
                )
            results = await asyncio.gather(
                *(self._batch_op(op, deadline, forwarded) for op in request.ops)
            )
            return kv_pb2.BatchResponse(results=results)

        return await self.serve("Batch", context, handle)

    async def _batch_op(
        self, op: kv_pb2.BatchOp, deadline: float, forwarded: bool
    ) -> kv_pb2.BatchResult:
        kind = op.WhichOneof("op")
        try:
            match kind:
                case "put":
                    return kv_pb2.BatchResult(put=await self.put(op.put, deadline, forwarded))
                case "delete":
                    return kv_pb2.BatchResult(
                        delete=await self.delete(op.delete, deadline, forwarded)
                    )
                case "compare_and_swap":
                    response = await self.compare_and_swap(op.compare_and_swap, deadline, forwarded)
                    return kv_pb2.BatchResult(compare_and_swap=response)
                case "get":
                    return kv_pb2.BatchResult(get=await self.get(op.get, deadline, forwarded))
            raise InvalidArgument("a batch operation names no operation")
        except ForwardedError as exc:
            return kv_pb2.BatchResult(error=op_error(exc.code, exc.details))
        except Exception as exc:
            code, message = status_for(exc)
            return kv_pb2.BatchResult(error=op_error(code, message))

    async def Scan(self, request: kv_pb2.ScanRequest, context: Any) -> kv_pb2.ScanResponse:
        limits = self.node.settings.limits

        async def handle(deadline: float) -> kv_pb2.ScanResponse:
            stale = _check_consistency(request.consistency)
            for name in ("prefix", "start", "end"):
                if len(getattr(request, name)) > limits.max_key_bytes:
                    raise InvalidArgument(
                        f"{name} is longer than the key limit of {limits.max_key_bytes} bytes "
                        "(max_key_bytes)"
                    )
            if request.limit > limits.max_scan_limit:
                raise InvalidArgument(
                    f"limit {request.limit} exceeds the maximum page of {limits.max_scan_limit} "
                    "(max_scan_limit); page with next_start"
                )
            limit = request.limit or limits.default_scan_limit
            index = await self._read_point(stale, deadline)
            items, next_start = await self.node.reader.run(
                lambda: self.node.state.scan(
                    prefix=request.prefix, start=request.start, end=request.end, limit=limit
                )
            )
            return kv_pb2.ScanResponse(
                items=[kv_pb2.KeyValue(key=k, value=v) for k, v in items],
                more=next_start is not None,
                next_start=next_start or b"",
                index=index,
            )

        return await self.serve("Scan", context, handle)


def op_error(code: grpc.StatusCode, message: str) -> kv_pb2.OpError:
    number: int = code.value[0]
    return kv_pb2.OpError(code=number, message=message)


def time_left(deadline: float) -> float:
    return deadline - time.monotonic()
