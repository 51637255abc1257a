"""The KV service: validates requests, proposes writes, serves linearizable and stale reads.

Rules:
- Limits are checked before anything else; a violation is INVALID_ARGUMENT naming the limit.
- Writes need the leader: a follower forwards them (once) to the leader it knows, waiting through
  an election within the caller's deadline.
- Linearizable reads run on any node: ReadIndex through the core, wait until applied >= that
  index, then read local state. STALE reads read local state at once.
- KV.Batch is batch-native: each op is validated and answered on its own, but the leader hands
  all the batch's writes to the driver as one input, and its linearizable gets share one
  ReadIndex and one reader job (a follower forwards the writes, and reads as the leader does).
- Every outcome is counted and timed by method and code (a batch's ops are counted under their
  own methods where the client sent them, with labels bound once); errors go through
  :func:`raftkv.server.errors.status_for`, the one mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import grpc

from raftkv.core.types import NodeId
from raftkv.metrics import Metrics
from raftkv.node.errors import NoLeader, NotLeaderError
from raftkv.node.protocols import SESSION_EXPIRED
from raftkv.pb import kv_pb2, kv_pb2_grpc
from raftkv.server.context import (
    NodeContext,
    deadline_in,
    deadline_of,
    was_forwarded,
    with_deadline,
)
from raftkv.server.errors import FailedPrecondition, InvalidArgument, status_for
from raftkv.server.forward import OP_FIELDS, STATUS_CODES, ForwardedError, Forwarder
from raftkv.server.settings import Limits

log = logging.getLogger(__name__)
R = TypeVar("R")
STREAM_BATCHES_IN_FLIGHT = 64
"""Batches one KV.BatchStream runs at once (a client keeps a few in flight per node)."""


class ServiceBase:
    service = ""

    def __init__(self, node: NodeContext, forwarder: Forwarder, metrics: Metrics | None) -> None:
        self.node = node
        self.forwarder = forwarder
        self.metrics = metrics

    async def serve(self, method: str, context: Any, handler: Callable[[float], Awaitable[R]]) -> R:
        result, code, message = await self.counted(method, handler(deadline_of(context)))
        if code != grpc.StatusCode.OK:
            await self._abort(context, code, message)
        context.set_trailing_metadata(self.node.metadata())
        return cast(R, result)  # set whenever the code is OK

    async def counted(
        self, method: str, work: Awaitable[R]
    ) -> tuple[R | None, grpc.StatusCode, str]:
        """Run one client request's ``work``: counted in flight (the shutdown drain waits for
        it), timed and counted by method and code. Returns (result, OK, "") or, if it raised,
        (None, its status, its message)."""
        started = time.perf_counter()
        result: R | None = None
        code, message = grpc.StatusCode.OK, ""
        self.node.inflight += 1
        try:
            result = await work
        except Exception as exc:
            code, message = _status_of(exc, method)
        finally:
            self.node.inflight -= 1
            if self.metrics is not None:
                self.metrics.on_client_request(method, code.name, time.perf_counter() - started)
        return result, code, message

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
                raise _not_the_leader(leader)
            address = self.node.settings.cluster[leader]
            if self.metrics is not None:
                self.metrics.on_forwarded(method)
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


def _check_write(kind: str, request: Any, limits: Limits) -> None:
    """A write's limits, as its unary call checks them (``kind`` is its BatchOp field)."""
    _check_key(request.key, limits.max_key_bytes)
    if kind != "delete":
        _check_value(request.value, limits.max_value_bytes)
    if kind == "compare_and_swap":
        _check_value(request.expected, limits.max_value_bytes, "expected value")


def _write_command(kind: str, request: Any, issued_at_ms: int) -> bytes:
    """The replicated command for a validated write (``kind`` is its BatchOp field)."""
    session = request.session
    command = kv_pb2.Command(
        client_id=session.client_id, sequence=session.sequence, issued_at_ms=issued_at_ms
    )
    match kind:
        case "put":
            op = command.put
            op.key, op.value, op.return_previous = (
                request.key,
                request.value,
                request.return_previous,
            )
        case "delete":
            command.delete.key = request.key
        case "compare_and_swap":
            cas = command.cas
            cas.key, cas.expected, cas.expect_absent, cas.value = (
                request.key,
                request.expected,
                request.expect_absent,
                request.value,
            )
        case _:
            raise AssertionError(f"not a write: {kind}")
    return command.SerializeToString()


def _fill_write(kind: str, out: kv_pb2.BatchResult, r: kv_pb2.CommandResult) -> None:
    """Set ``out``'s ``kind`` response from the applied command's result."""
    match kind:
        case "put":
            _fill_put(out.put, r)
        case "delete":
            _fill_delete(out.delete, r)
        case _:
            _fill_cas(out.compare_and_swap, r)


def _fill_put(out: kv_pb2.PutResponse, r: kv_pb2.CommandResult) -> None:
    out.SetInParent()
    out.had_previous, out.previous, out.index = r.had_previous, r.previous, r.index


def _fill_delete(out: kv_pb2.DeleteResponse, r: kv_pb2.CommandResult) -> None:
    out.SetInParent()
    out.deleted, out.index = r.ok, r.index


def _fill_cas(out: kv_pb2.CompareAndSwapResponse, r: kv_pb2.CommandResult) -> None:
    out.SetInParent()
    out.swapped, out.had_current, out.current, out.index = r.ok, r.had_previous, r.previous, r.index


def _session_expired() -> FailedPrecondition:
    return FailedPrecondition(
        "the client session expired: this command was not applied, and whether an earlier "
        "attempt was is unknown; start a new session"
    )


def _not_the_leader(leader: NodeId) -> NoLeader:
    """A forwarded request reached a node that does not lead: no second hop."""
    return NoLeader(f"this node is not the leader (node {leader} is); ask it directly")


def _now_ms() -> int:
    return int(time.time() * 1000)


class KVService(ServiceBase, kv_pb2_grpc.KVServicer):
    service = "KV"

    async def _propose(self, data: bytes, deadline: float) -> kv_pb2.CommandResult:
        outcome = await with_deadline(self.node.driver.propose(data), deadline)
        if outcome is SESSION_EXPIRED:
            raise _session_expired()
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
        _check_write("put", request, self.node.settings.limits)

        async def local() -> kv_pb2.PutResponse:
            r = await self._propose(_write_command("put", request, _now_ms()), deadline)
            out = kv_pb2.PutResponse()
            _fill_put(out, r)
            return out

        return await self.on_leader("Put", request, forwarded, deadline, local)

    async def delete(self, request: kv_pb2.DeleteRequest, deadline: float, forwarded: bool) -> Any:
        _check_write("delete", request, self.node.settings.limits)

        async def local() -> kv_pb2.DeleteResponse:
            r = await self._propose(_write_command("delete", request, _now_ms()), deadline)
            out = kv_pb2.DeleteResponse()
            _fill_delete(out, r)
            return out

        return await self.on_leader("Delete", request, forwarded, deadline, local)

    async def compare_and_swap(
        self, request: kv_pb2.CompareAndSwapRequest, deadline: float, forwarded: bool
    ) -> Any:
        _check_write("compare_and_swap", request, self.node.settings.limits)

        async def local() -> kv_pb2.CompareAndSwapResponse:
            data = _write_command("compare_and_swap", request, _now_ms())
            r = await self._propose(data, deadline)
            out = kv_pb2.CompareAndSwapResponse()
            _fill_cas(out, r)
            return out

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

        async def handle(deadline: float) -> kv_pb2.BatchResponse:
            self._check_batch_size(request.ops)
            return await self.batch(request.ops, deadline, forwarded)

        return await self.serve("Batch", context, handle)

    async def BatchStream(
        self, requests: AsyncIterator[kv_pb2.StreamBatchRequest], context: Any
    ) -> None:
        """KV.Batch, many at a time on one stream: each batch runs as its own task (at most
        STREAM_BATCHES_IN_FLIGHT per stream; more are answered RESOURCE_EXHAUSTED) and is
        answered as soon as it finishes. When the client closes its side, the batches it sent
        are still answered."""
        forwarded = was_forwarded(context)
        # At once: the client waits for it before its first write (see raftkv.client._stream).
        await context.send_initial_metadata(self.node.metadata())
        write_lock = asyncio.Lock()  # grpc.aio takes one write at a time
        running: set[asyncio.Task[None]] = set()

        async def answer(response: kv_pb2.StreamBatchResponse) -> None:
            async with write_lock:
                await context.write(response)

        async def run(request: kv_pb2.StreamBatchRequest) -> None:
            response = await self._stream_batch(request, forwarded)
            with contextlib.suppress(Exception):  # the stream has ended: nobody to answer
                await answer(response)

        try:
            async for request in requests:
                if len(running) >= STREAM_BATCHES_IN_FLIGHT:
                    refused = kv_pb2.StreamBatchResponse(id=request.id)
                    refused.error.code = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
                    refused.error.message = (
                        f"{len(running)} batches are running on this stream (the limit); "
                        "wait for their answers"
                    )
                    await answer(refused)
                    continue
                task = asyncio.create_task(run(request))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()

    async def _stream_batch(
        self, request: kv_pb2.StreamBatchRequest, forwarded: bool
    ) -> kv_pb2.StreamBatchResponse:
        """One batch of a stream, counted and timed as a KV.Batch call; a failure of the whole
        batch is its answer's error."""
        response = kv_pb2.StreamBatchResponse(id=request.id)
        deadline = deadline_in(request.timeout_ms / 1000 if request.timeout_ms else None)

        async def work() -> None:
            self._check_batch_size(request.batch.ops)
            await self.batch(request.batch.ops, deadline, forwarded, into=response.batch)

        _, code, message = await self.counted("Batch", work())
        if code != grpc.StatusCode.OK:
            response.ClearField("batch")
            response.error.code = code.value[0]
            response.error.message = message
        leader = self.node.leader_address()
        if leader:
            response.leader = leader
        return response

    def _check_batch_size(self, ops: Sequence[kv_pb2.BatchOp]) -> None:
        limit = self.node.settings.limits.max_batch_ops
        if len(ops) > limit:
            raise InvalidArgument(
                f"batch of {len(ops)} operations; the limit is {limit} (max_batch_ops)"
            )

    # ---------------------------------------------------------------- KV.Batch
    async def batch(
        self,
        ops: Sequence[kv_pb2.BatchOp],
        deadline: float,
        forwarded: bool,
        into: kv_pb2.BatchResponse | None = None,
    ) -> kv_pb2.BatchResponse:
        """Every op's own outcome, in order, at a cost shared by the whole batch: the writes go
        to the driver as ONE input (on the leader; a follower forwards them), the linearizable
        gets share ONE ReadIndex and the gets ONE reader job. An op that fails (validation
        included) fails alone. The results go ``into`` that message if given."""
        started = time.perf_counter()
        response = kv_pb2.BatchResponse() if into is None else into
        out = [response.results.add() for _ in ops]
        limits = self.node.settings.limits
        writes: list[int] = []
        gets: list[int] = []
        stale_gets: list[int] = []
        for i, op in enumerate(ops):
            kind = op.WhichOneof("op")
            try:
                if kind == "get":
                    _check_key(op.get.key, limits.max_key_bytes)
                    (stale_gets if _check_consistency(op.get.consistency) else gets).append(i)
                elif kind is None:
                    raise InvalidArgument("a batch operation names no operation")
                else:
                    _check_write(kind, getattr(op, kind), limits)
                    writes.append(i)
            except Exception as exc:
                _fill_error(out[i], exc)
        jobs = []
        if writes:
            jobs.append(self._batch_writes(ops, writes, out, deadline, forwarded))
        if gets:
            jobs.append(self._batch_gets(ops, gets, out, deadline, stale=False))
        if stale_gets:
            jobs.append(self._batch_gets(ops, stale_gets, out, deadline, stale=True))
        if len(jobs) == 1:
            await jobs[0]
        elif jobs:
            await asyncio.gather(*jobs)
        if self.metrics is not None and not forwarded:
            self.metrics.on_batch_ops(_tally(ops, out), time.perf_counter() - started)
        return response

    async def _batch_gets(
        self,
        ops: Sequence[kv_pb2.BatchOp],
        which: list[int],
        out: list[kv_pb2.BatchResult],
        deadline: float,
        *,
        stale: bool,
    ) -> None:
        try:
            index = await self._read_point(stale, deadline)
            values = await self.node.reader.get_many([ops[i].get.key for i in which])
        except Exception as exc:
            for i in which:
                _fill_error(out[i], exc)
            return
        for i, value in zip(which, values, strict=True):
            response = out[i].get
            response.SetInParent()
            response.index = index
            if value is not None:
                response.found = True
                response.value = value

    async def _batch_writes(
        self,
        ops: Sequence[kv_pb2.BatchOp],
        which: list[int],
        out: list[kv_pb2.BatchResult],
        deadline: float,
        forwarded: bool,
    ) -> None:
        """As :meth:`on_leader`, for many writes at once."""
        pending = which
        while pending:
            try:
                leader = await self.node.wait_for_leader(deadline)
            except Exception as exc:
                for i in pending:
                    _fill_error(out[i], exc)
                return
            if leader == self.node.settings.node_id:
                pending = await self._propose_writes(ops, pending, out, deadline)
                continue  # the ones left lost the leadership between the check and the proposal
            if forwarded:
                refused = _not_the_leader(leader)
                for i in pending:
                    _fill_error(out[i], refused)
                return
            await self._forward_writes(ops, pending, out, leader, deadline)
            return

    async def _propose_writes(
        self,
        ops: Sequence[kv_pb2.BatchOp],
        which: list[int],
        out: list[kv_pb2.BatchResult],
        deadline: float,
    ) -> list[int]:
        """Propose ``which`` as one driver input and fill each op's outcome; returns the ops to
        try again (this node lost the leadership before proposing them)."""
        now_ms = _now_ms()
        kinds = [ops[i].WhichOneof("op") or "" for i in which]
        datas = [
            _write_command(kind, getattr(ops[i], kind), now_ms)
            for i, kind in zip(which, kinds, strict=True)
        ]
        try:
            futures = self.node.driver.propose_many(datas)
        except Exception as exc:
            for i in which:
                _fill_error(out[i], exc)
            return []
        try:
            # Each future in turn, not asyncio.wait: that costs a waiter, a timer and a callback
            # per future, a good part of a lone write's time on the leader. At the deadline the
            # future being awaited is cancelled, as the rest are below.
            async with asyncio.timeout_at(deadline):
                for fut in futures:
                    if not fut.done():
                        await fut
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            for fut in futures:
                fut.cancel()  # as a cancelled unary call: withdrawn if not yet proposed
            raise
        again: list[int] = []
        for i, kind, fut in zip(which, kinds, futures, strict=True):
            if not fut.done() or fut.cancelled():
                fut.cancel()  # withdrawn if the driver has not proposed it yet
                _fill_error(out[i], TimeoutError())
            elif (error := fut.exception()) is not None:
                if isinstance(error, NotLeaderError):
                    again.append(i)
                else:
                    _fill_error(out[i], error)
            else:
                outcome = fut.result()
                if outcome is SESSION_EXPIRED:
                    _fill_error(out[i], _session_expired())
                else:
                    assert isinstance(outcome, kv_pb2.CommandResult), f"unexpected {outcome!r}"
                    _fill_write(kind, out[i], outcome)
        return again

    async def _forward_writes(
        self,
        ops: Sequence[kv_pb2.BatchOp],
        which: list[int],
        out: list[kv_pb2.BatchResult],
        leader: NodeId,
        deadline: float,
    ) -> None:
        """A follower's share of a batch: its writes go to the leader as ONE KV.Batch, in order
        (the forwarder's per-op queue could split them over concurrent calls and reorder one
        session's sequences); the leader's answer for each comes back unchanged."""
        if self.metrics is not None:
            methods: dict[str, int] = {}
            for i in which:
                method = _METHODS[ops[i].WhichOneof("op") or ""]
                methods[method] = methods.get(method, 0) + 1
            for method, n in methods.items():
                self.metrics.on_forwarded(method, n)
        request = kv_pb2.BatchRequest(ops=[ops[i] for i in which])
        address = self.node.settings.cluster[leader]
        try:
            response = await self.forwarder.call("KV", "Batch", address, request, deadline)
        except Exception as exc:
            for i in which:
                _fill_error(out[i], exc)
            return
        results = response.results
        for n, i in enumerate(which):
            if n < len(results) and results[n].WhichOneof("result") is not None:
                out[i].CopyFrom(results[n])
            else:
                _fill_error(
                    out[i], ForwardedError(grpc.StatusCode.INTERNAL, "the leader sent no result")
                )

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


_METHODS = {field: method for method, field in OP_FIELDS.items()}
"""A BatchOp field -> the unary method it stands for."""


def _tally(
    ops: Sequence[kv_pb2.BatchOp], out: list[kv_pb2.BatchResult]
) -> dict[tuple[str, str], int]:
    """(method, code) -> how many of a batch's ops ended so: a batch's ops count as client
    requests of their own methods (dashboards read Put/Get rates), where the client sent them
    (a forwarded batch is not counted again on the leader). An op naming no method is not."""
    counts: dict[tuple[str, str], int] = {}
    for op, result in zip(ops, out, strict=True):
        method = _METHODS.get(op.WhichOneof("op") or "")
        if method is None:
            continue
        code = "OK"
        if result.WhichOneof("result") == "error":
            code = STATUS_CODES.get(result.error.code, grpc.StatusCode.UNKNOWN).name
        counts[method, code] = counts.get((method, code), 0) + 1
    return counts


def _fill_error(out: kv_pb2.BatchResult, exc: BaseException) -> None:
    code, message = _status_of(exc, "a batch operation")
    out.error.code = code.value[0]
    out.error.message = message


def _status_of(exc: BaseException, what: str) -> tuple[grpc.StatusCode, str]:
    """The status a client gets for ``exc``: the leader's own for a forwarded call, else
    :func:`status_for`'s. An INTERNAL one is a bug here: logged with its traceback."""
    if isinstance(exc, ForwardedError):
        return exc.code, exc.details
    code, message = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.error("%s failed", what, exc_info=exc)
    return code, message


def time_left(deadline: float) -> float:
    return deadline - time.monotonic()
