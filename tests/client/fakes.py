"""A fake raftkv cluster: N in-process grpc.aio servers implementing KV and Cluster over one dict.

It follows the server conventions the client relies on: every response (success or error) carries
``raftkv-leader`` trailing metadata when a leader is known; followers serve by "forwarding" (here:
the shared dict) unless ``forward`` is off, in which case they answer UNAVAILABLE with the hint;
writes are deduplicated by (client_id, sequence). KV.Batch answers each operation as its unary
method would, an error as that item's OpError. Faults are queued per method ("Batch" for a whole
batch) and consumed in order by the next matching request, so tests script failures without
sleeping.

The servers run on their own event loop in a daemon thread, so blocking clients (and click's
CliRunner) can talk to them from the test thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import zlib
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import grpc.aio

from raftkv.client.backup import crc32c
from raftkv.pb import kv_pb2, kv_pb2_grpc

T = TypeVar("T")


@dataclass
class Fault:
    """What to do to the next request of ``method`` (at ``node``, or any node when None).

    kind: "abort" (answer ``code``/``details``, not applied), "apply_then_abort" (apply, then fail
    with ``code`` as if the response was lost), "apply_then_hang" / "hang" (never answer),
    "no_metadata_abort" (abort without raftkv metadata, like a transport failure).
    """

    method: str
    kind: str
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    details: str = ""
    node: int | None = None


@dataclass
class Received:
    node: int
    method: str
    request: Any


@dataclass
class FakeState:
    store: dict[bytes, bytes] = field(default_factory=dict)
    sessions: dict[tuple[int, int], Any] = field(default_factory=dict)
    applied: list[tuple[int, int]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    leader: int | None = 0
    forward: bool = True
    page_size: int = 2
    snapshot_chunks: list[bytes] = field(default_factory=lambda: [b"abc", b"defg", b""])
    corrupt_snapshot: bool = False
    snapshot_checksum: str = "crc32"  # what the real server sends; or "crc32c" as the proto says
    transfers: list[int] = field(default_factory=list)


class FakeCluster:
    def __init__(self, nodes: int = 3) -> None:
        self.state = FakeState()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[Any] = []
        self.addresses: list[str] = []
        self.down: set[int] = set()
        for node in range(nodes):
            server, address = self.run(self._start(node))
            self.servers.append(server)
            self.addresses.append(address)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def _start(self, node: int) -> tuple[Any, str]:
        server = grpc.aio.server()
        kv_pb2_grpc.add_KVServicer_to_server(_KV(self, node), server)  # type: ignore[no-untyped-call]
        kv_pb2_grpc.add_ClusterServicer_to_server(  # type: ignore[no-untyped-call]
            _Cluster(self, node), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, f"127.0.0.1:{port}"

    def kill(self, node: int) -> None:
        """Stop a node: its port refuses connections from now on."""
        self.down.add(node)
        self.run(self.servers[node].stop(None))

    def close(self) -> None:
        for node, server in enumerate(self.servers):
            if node not in self.down:
                self.run(server.stop(None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()

    # ---- helpers for tests ----

    def inject(self, *faults: Fault) -> None:
        self.state.faults.extend(faults)

    def requests(self, method: str) -> list[Received]:
        return [r for r in self.state.received if r.method == method]

    @property
    def leader_address(self) -> str:
        assert self.state.leader is not None
        return self.addresses[self.state.leader]

    # ---- request handling ----

    def metadata(self) -> tuple[tuple[str, str], ...]:
        leader = self.state.leader
        return (("raftkv-leader", self.addresses[leader] if leader is not None else ""),)

    def take_fault(self, node: int, method: str) -> Fault | None:
        for fault in self.state.faults:
            if fault.method == method and fault.node in (None, node):
                self.state.faults.remove(fault)
                return fault
        return None

    async def handle(self, node: int, method: str, request: Any, context: Any) -> Any:
        try:
            response, after = await self.serve_op(node, method, request)
        except _Abort as abort:
            metadata = self.metadata() if abort.with_metadata else ()
            await context.abort(abort.code, abort.details, trailing_metadata=metadata)
        if after is not None and after.kind == "apply_then_abort":
            await context.abort(after.code, after.details)
        if after is not None and after.kind == "apply_then_hang":
            await asyncio.Event().wait()
        context.set_trailing_metadata(self.metadata())
        return response

    async def serve_op(self, node: int, method: str, request: Any) -> tuple[Any, Fault | None]:
        """One operation: (response, its fault still to act after applying), or raise _Abort."""
        self.state.received.append(Received(node, method, request))
        fault = self.take_fault(node, method)
        if fault is not None and fault.kind == "hang":
            await asyncio.Event().wait()
        if fault is not None and fault.kind == "abort":
            raise _Abort(fault.code, fault.details)
        if fault is not None and fault.kind == "no_metadata_abort":
            raise _Abort(fault.code, fault.details, with_metadata=False)
        needs_leader = method not in ("Status",) and not (
            method in ("Get", "Scan") and request.consistency == kv_pb2.CONSISTENCY_STALE
        )
        if needs_leader and self.state.leader is None:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, "no leader known")
        if needs_leader and node != self.state.leader and not self.state.forward:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, "not the leader")
        if method in ("Get", "Put", "Delete", "CompareAndSwap") and len(request.key) > 4096:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"key is {len(request.key)} bytes, over the limit of 4096 bytes",
            )
        response = getattr(self, "do_" + method)(node, request)
        return response, fault

    async def batch(self, node: int, request: Any, context: Any) -> Any:
        """KV.Batch as the server does it: one result per operation, an OpError for a failed one.

        A fault of kind "hang" / "apply_then_*" / "no_metadata_abort" on an operation stands for
        a transport failure, so it hits the whole call (as it would hit a one-operation batch).
        """
        self.state.received.append(Received(node, "Batch", request))
        fault = self.take_fault(node, "Batch")
        if fault is not None and fault.kind == "hang":
            await asyncio.Event().wait()
        if fault is not None and fault.kind in ("abort", "no_metadata_abort"):
            metadata = self.metadata() if fault.kind == "abort" else ()
            await context.abort(fault.code, fault.details, trailing_metadata=metadata)
        results = []
        after = fault
        for op in request.ops:
            kind = op.WhichOneof("op")
            try:
                response, op_after = await self.serve_op(node, _METHODS[kind], getattr(op, kind))
            except _Abort as abort:
                if not abort.with_metadata:
                    await context.abort(abort.code, abort.details)
                error = kv_pb2.OpError(code=abort.code.value[0], message=abort.details)
                results.append(kv_pb2.BatchResult(error=error))
                continue
            after = op_after or after
            results.append(kv_pb2.BatchResult(**{kind: response}))
        if after is not None and after.kind == "apply_then_abort":
            await context.abort(after.code, after.details)
        if after is not None and after.kind == "apply_then_hang":
            await asyncio.Event().wait()
        context.set_trailing_metadata(self.metadata())
        return kv_pb2.BatchResponse(results=results)

    def _session(self, request: Any, apply: Any) -> Any:
        key = (request.session.client_id, request.session.sequence)
        if key[0] and key in self.state.sessions:
            return self.state.sessions[key]
        response = apply()
        self.state.applied.append(key)
        if key[0]:
            self.state.sessions[key] = response
        return response

    def do_Get(self, node: int, request: Any) -> Any:
        value = self.state.store.get(request.key)
        return kv_pb2.GetResponse(found=value is not None, value=value or b"")

    def do_Put(self, node: int, request: Any) -> Any:
        def apply() -> Any:
            previous = self.state.store.get(request.key)
            self.state.store[request.key] = request.value
            return kv_pb2.PutResponse(
                had_previous=previous is not None,
                previous=previous if request.return_previous and previous else b"",
            )

        return self._session(request, apply)

    def do_Delete(self, node: int, request: Any) -> Any:
        def apply() -> Any:
            existed = self.state.store.pop(request.key, None) is not None
            return kv_pb2.DeleteResponse(deleted=existed)

        return self._session(request, apply)

    def do_CompareAndSwap(self, node: int, request: Any) -> Any:
        def apply() -> Any:
            current = self.state.store.get(request.key)
            ok = current is None if request.expect_absent else current == request.expected
            if ok:
                self.state.store[request.key] = request.value
            return kv_pb2.CompareAndSwapResponse(
                swapped=ok, had_current=current is not None, current=current or b""
            )

        return self._session(request, apply)

    def do_Scan(self, node: int, request: Any) -> Any:
        keys = sorted(
            k
            for k in self.state.store
            if k.startswith(request.prefix)
            and (not request.start or k >= request.start)
            and (not request.end or k < request.end)
        )
        size = request.limit or self.state.page_size
        size = min(size, self.state.page_size)
        page, rest = keys[:size], keys[size:]
        return kv_pb2.ScanResponse(
            items=[kv_pb2.KeyValue(key=k, value=self.state.store[k]) for k in page],
            more=bool(rest),
            next_start=rest[0] if rest else b"",
        )

    def do_Status(self, node: int, request: Any) -> Any:
        leader = self.state.leader
        members = [
            kv_pb2.Member(id=i + 1, address=address) for i, address in enumerate(self.addresses)
        ]
        return kv_pb2.StatusResponse(
            id=node + 1,
            address=self.addresses[node],
            role="leader" if node == leader else "follower",
            term=3,
            leader_id=(leader + 1) if leader is not None else 0,
            leader_address=self.addresses[leader] if leader is not None else "",
            commit_index=10,
            applied_index=10 if node == leader else 8,
            last_index=10,
            members=members,
            # As a quorum-first leader of three: one follower eager, the last one lazy.
            followers=[
                kv_pb2.FollowerStatus(
                    id=i + 1, match_index=10, state="replicate", lazy=i == len(self.addresses) - 1
                )
                for i in range(len(self.addresses))
                if node == leader and i != leader
            ],
            cluster_id="c1",
        )

    def do_TransferLeader(self, node: int, request: Any) -> Any:
        self.state.transfers.append(request.target_id)
        self.state.leader = request.target_id - 1
        return kv_pb2.TransferLeaderResponse(leader_id=request.target_id)


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, *, with_metadata: bool = True):
        super().__init__(details)
        self.code, self.details, self.with_metadata = code, details, with_metadata


_METHODS = {"get": "Get", "put": "Put", "delete": "Delete", "compare_and_swap": "CompareAndSwap"}


class _KV(kv_pb2_grpc.KVServicer):
    def __init__(self, cluster: FakeCluster, node: int) -> None:
        self.c, self.n = cluster, node

    async def Get(self, request: Any, context: Any) -> Any:
        return await self.c.handle(self.n, "Get", request, context)

    async def Put(self, request: Any, context: Any) -> Any:
        return await self.c.handle(self.n, "Put", request, context)

    async def Delete(self, request: Any, context: Any) -> Any:
        return await self.c.handle(self.n, "Delete", request, context)

    async def CompareAndSwap(self, request: Any, context: Any) -> Any:
        return await self.c.handle(self.n, "CompareAndSwap", request, context)

    async def Scan(self, request: Any, context: Any) -> Any:
        return await self.c.handle(self.n, "Scan", request, context)

    async def Batch(self, request: Any, context: Any) -> Any:
        return await self.c.batch(self.n, request, context)

    async def BatchStream(self, requests: Any, context: Any) -> Any:
        # As a server from before KV.BatchStream: the client falls back to KV.Batch and unary
        # calls, whose faults this fake models (the stream is tested against real nodes).
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


class _Cluster(kv_pb2_grpc.ClusterServicer):
    def __init__(self, cluster: FakeCluster, node: int) -> None:
        self.c, self.n = cluster, node

    async def Status(self, request: Any, context: Any) -> Any:
        return await self.c.handle(self.n, "Status", request, context)

    async def TransferLeader(self, request: Any, context: Any) -> Any:
        return await self.c.handle(self.n, "TransferLeader", request, context)

    async def Snapshot(self, request: Any, context: Any) -> Any:
        state = self.c.state
        self.c.state.received.append(Received(self.n, "Snapshot", request))
        fault = self.c.take_fault(self.n, "Snapshot")
        if fault is not None:
            await context.abort(fault.code, fault.details, trailing_metadata=self.c.metadata())
        crc = 0
        yield kv_pb2.BackupChunk(
            meta=kv_pb2.BackupMeta(index=10, term=3, voters=[1, 2, 3], cluster_id="c1")
        )
        for i, data in enumerate(state.snapshot_chunks):
            crc = (
                crc32c(data, crc) if state.snapshot_checksum == "crc32c" else zlib.crc32(data, crc)
            )
            last = i == len(state.snapshot_chunks) - 1
            yield kv_pb2.BackupChunk(
                data=data,
                done=last,
                crc32c=(crc ^ 1 if state.corrupt_snapshot else crc) if last else 0,
            )


def unused_address() -> str:
    """An address nothing listens on (a port bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"
