"""The Raft gRPC service: peer messages in, validated once, handed to the node's inbox.

Rules:
- Every request passes :mod:`raftkv.transport.codec`; refused input is answered with a status that
  says why (another cluster: FAILED_PRECONDITION; unknown node: PERMISSION_DENIED; malformed:
  INVALID_ARGUMENT), counted, and never reaches the core.
- Unary methods return at once: the answer to a peer message is its own RPC later.
- InstallSnapshot stages the stream through the state machine's stager off the event loop, checks
  offsets, size and checksum, and only then steps a SnapshotRequest carrying the REAL meta the
  staged state reports.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, NoReturn, Protocol

import grpc

from raftkv.pb import raft_pb2 as pb
from raftkv.pb import raft_pb2_grpc
from raftkv.transport import codec
from raftkv.transport.base import Inbox, SnapshotStager, StagingWriter
from raftkv.transport.config import TransportConfig

log = logging.getLogger(__name__)

_ACK = pb.PeerAck()
_CODES = {
    "other_cluster": grpc.StatusCode.FAILED_PRECONDITION,
    "unknown_node": grpc.StatusCode.PERMISSION_DENIED,
    "misaddressed": grpc.StatusCode.FAILED_PRECONDITION,
    "malformed": grpc.StatusCode.INVALID_ARGUMENT,
}


async def _abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("ServicerContext.abort always raises")


class RejectObserver(Protocol):
    def on_peer_rejected(self, reason: str) -> None: ...

    def on_peer_message(self, method: str) -> None: ...

    def on_snapshot_received(self, ok: bool) -> None: ...


class RaftServicer(raft_pb2_grpc.RaftServicer):
    def __init__(
        self,
        *,
        check: codec.PeerCheck,
        inbox: Inbox,
        stager: SnapshotStager,
        config: TransportConfig,
        observer: RejectObserver | None = None,
    ) -> None:
        self._check = check
        self._inbox = inbox
        self._stager = stager
        self._config = config
        self._observer = observer
        self._staging = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raftkv-snap-stage")
        self._snapshot_lock = asyncio.Lock()
        self._streams: set[asyncio.Task[Any]] = set()

    async def _one(
        self, method: str, request: Any, context: grpc.aio.ServicerContext
    ) -> pb.PeerAck:
        try:
            message = codec.decode(method, request, self._check)
        except codec.CodecError as exc:
            await self._refuse(exc, context)
        if self._observer is not None:
            self._observer.on_peer_message(method)
        self._inbox.deliver(message)
        return _ACK

    async def _refuse(self, exc: codec.CodecError, context: grpc.aio.ServicerContext) -> NoReturn:
        if self._observer is not None:
            self._observer.on_peer_rejected(exc.reason)
        log.warning("refused a peer message: %s", exc)
        await _abort(context, _CODES[exc.reason], str(exc))

    async def RequestVote(self, request: pb.VoteRequest, context: Any) -> pb.PeerAck:
        return await self._one("RequestVote", request, context)

    async def Vote(self, request: pb.VoteResponse, context: Any) -> pb.PeerAck:
        return await self._one("Vote", request, context)

    async def AppendEntries(self, request: pb.AppendRequest, context: Any) -> pb.PeerAck:
        return await self._one("AppendEntries", request, context)

    async def AppendEntriesResult(self, request: pb.AppendResponse, context: Any) -> pb.PeerAck:
        return await self._one("AppendEntriesResult", request, context)

    async def TimeoutNow(self, request: pb.TimeoutNowRequest, context: Any) -> pb.PeerAck:
        return await self._one("TimeoutNow", request, context)

    async def ReadIndex(self, request: pb.ReadIndexRequest, context: Any) -> pb.PeerAck:
        return await self._one("ReadIndex", request, context)

    async def ReadIndexResult(self, request: pb.ReadIndexResponse, context: Any) -> pb.PeerAck:
        return await self._one("ReadIndexResult", request, context)

    async def Stream(
        self, request_iterator: AsyncIterator[pb.PeerBatch], context: Any
    ) -> pb.PeerAck:
        """The ordered fast path: every batch's messages go to the inbox in order."""
        check, inbox, observer = self._check, self._inbox, self._observer
        task = asyncio.current_task()
        if task is not None:
            # Peers keep their streams open: close() ends them, or shutdown waits out its grace.
            self._streams.add(task)
            task.add_done_callback(self._streams.discard)
        async for batch in request_iterator:
            for wrapper in batch.messages:
                try:
                    message = codec.decode_peer_message(wrapper, check)
                except codec.CodecError as exc:
                    await self._refuse(exc, context)
                if observer is not None:
                    observer.on_peer_message(codec.method_of(wrapper))
                inbox.deliver(message)
        return _ACK

    async def InstallSnapshot(
        self, request_iterator: AsyncIterator[pb.SnapshotChunk], context: Any
    ) -> pb.PeerAck:
        if self._snapshot_lock.locked():
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "another snapshot is being received"
            )
        async with self._snapshot_lock:
            ok = False
            try:
                await self._receive(request_iterator, context)
                ok = True
            finally:
                if self._observer is not None:
                    self._observer.on_snapshot_received(ok)
        return _ACK

    async def _receive(self, chunks: AsyncIterator[pb.SnapshotChunk], context: Any) -> None:
        loop = asyncio.get_running_loop()
        first = await anext(aiter(chunks), None)
        if first is None:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "empty snapshot stream")
        try:
            announced = codec.decode_snapshot_header(first, self._check)
        except codec.CodecError as exc:
            await self._refuse(exc, context)
        writer: StagingWriter = await loop.run_in_executor(
            self._staging, self._stager.begin_staging, announced.meta
        )
        offset, crc, done = 0, 0, False
        try:
            async for chunk in chunks:
                problem = self._chunk_problem(chunk, offset, done)
                if problem:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
                if chunk.done:
                    if chunk.crc32c != crc:
                        await context.abort(
                            grpc.StatusCode.DATA_LOSS, "snapshot checksum mismatch; resend"
                        )
                    done = True
                    continue
                crc = zlib.crc32(chunk.data, crc)
                offset += len(chunk.data)
                await loop.run_in_executor(self._staging, writer.feed, chunk.data)
            if not done:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "snapshot stream ended early")
            meta = await loop.run_in_executor(self._staging, writer.commit)
        except BaseException:
            await loop.run_in_executor(self._staging, writer.abort)
            raise
        log.info("received snapshot at index %d term %d (%d bytes)", meta.index, meta.term, offset)
        self._inbox.deliver(replace(announced, meta=meta))

    def _chunk_problem(self, chunk: pb.SnapshotChunk, offset: int, done: bool) -> str | None:
        if done:
            return "snapshot data after the final chunk"
        if chunk.offset != offset:
            return f"snapshot chunk at offset {chunk.offset}, expected {offset}"
        if len(chunk.data) > self._config.snapshot_chunk_bytes:
            return (
                f"snapshot chunk of {len(chunk.data)} bytes exceeds snapshot_chunk_bytes "
                f"({self._config.snapshot_chunk_bytes})"
            )
        if offset + len(chunk.data) > self._config.max_snapshot_bytes:
            return f"snapshot exceeds max_snapshot_bytes ({self._config.max_snapshot_bytes})"
        return None

    def end_streams(self) -> None:
        """End every inbound peer stream (at shutdown; peers reconnect elsewhere or later)."""
        for task in list(self._streams):
            task.cancel()

    def close(self) -> None:
        self.end_streams()
        self._staging.shutdown(wait=False, cancel_futures=True)
