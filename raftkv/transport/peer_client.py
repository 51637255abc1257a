"""Sending to peers over grpc.aio: one channel, one bounded outbox and one sender task per peer.

Rules:
- ``send`` never blocks and never raises: a full outbox drops the message (Raft resends), an
  unknown peer is logged once.
- Messages travel on ONE long-lived ``Stream`` call per peer: ordered (reordering would turn
  pipelined appends into rejections and probes), and everything queued when the sender wakes
  goes out as one batch (one HTTP/2 message), each write within ``rpc_timeout_s``. A broken
  stream is reopened with capped exponential backoff; what was queued meanwhile is dropped.
- A failed RPC reports the peer unreachable to the core (at most once per failure streak), so the
  leader falls back to probing instead of streaming into the void.
- Snapshots stream on their own task, one at a time per peer; the outcome is reported to the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import grpc

from raftkv.core.messages import (
    AppendRequest,
    AppendResponse,
    Message,
    SnapshotRequest,
    VoteResponse,
)
from raftkv.core.types import NodeId
from raftkv.pb import raft_pb2 as pb
from raftkv.pb import raft_pb2_grpc
from raftkv.transport import codec
from raftkv.transport.base import Inbox, SnapshotSource
from raftkv.transport.config import TransportConfig

log = logging.getLogger(__name__)
_closing: set[asyncio.Task[None]] = set()
"""Channels of peers whose address changed, closing in the background."""


class PeerObserver(Protocol):
    """Metrics hooks; cheap, never raise."""

    def on_peer_rpc(self, method: str, peer: int, seconds: float, ok: bool) -> None: ...

    def on_message_sent(self, kind: str, entries: int, entry_bytes: int, ok: bool) -> None: ...

    def on_outbox_drop(self, peer: int) -> None: ...

    def on_snapshot_sent(self, peer: int, ok: bool) -> None: ...


class _Peer:
    def __init__(self, owner: GrpcTransport, peer_id: NodeId, address: str) -> None:
        self.owner = owner
        self.peer_id = peer_id
        self.address = address
        cfg = owner.config
        if owner.credentials is None:
            self.channel = grpc.aio.insecure_channel(address, options=cfg.channel_options())
        else:  # TLS (mutual, with a peer certificate) when the node is configured for it
            self.channel = grpc.aio.secure_channel(
                address, owner.credentials, options=cfg.channel_options()
            )
        self.stub = raft_pb2_grpc.RaftStub(self.channel)  # type: ignore[no-untyped-call]
        self.outbox: deque[Message] = deque()
        self.wake = asyncio.Event()
        self.failing = False
        self.snapshot_task: asyncio.Task[None] | None = None
        self.task = asyncio.create_task(self._send_loop(), name=f"raftkv-peer-{peer_id}")

    def enqueue(self, m: Message) -> None:
        if len(self.outbox) >= self.owner.config.max_outbox:
            if self.owner.observer is not None:
                self.owner.observer.on_outbox_drop(self.peer_id)
            return
        self.outbox.append(m)
        self.wake.set()

    async def _send_loop(self) -> None:
        backoff = self.owner.config.reconnect_backoff_ms / 1000
        while True:
            call = self.stub.Stream(wait_for_ready=False)
            try:
                await self._pump(call)
            except asyncio.CancelledError:
                call.cancel()
                raise
            except Exception as exc:  # the stream broke: the peer is down, restarting or slow
                call.cancel()
                self._note_failure(exc)
            # Messages queued meanwhile are stale; Raft resends what still matters.
            self.outbox.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.owner.config.max_reconnect_backoff_ms / 1000)
            if not self.failing:
                backoff = self.owner.config.reconnect_backoff_ms / 1000

    async def _pump(self, call: Any) -> None:
        """Write everything queued as one batch per wake-up, in order, each within a deadline."""
        cfg = self.owner.config
        observer = self.owner.observer
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox:
                batch = self._take_batch(cfg.max_message_bytes // 2)
                if not batch.messages:
                    continue
                started = time.perf_counter()
                # asyncio.timeout, not wait_for: wait_for wraps the write in a new task.
                async with asyncio.timeout(cfg.rpc_timeout_s):
                    await call.write(batch)
                if observer is not None:
                    observer.on_peer_rpc(
                        "Stream", self.peer_id, time.perf_counter() - started, True
                    )
                if self.failing:
                    self.failing = False
                    log.info("peer %d at %s reachable again", self.peer_id, self.address)

    def _take_batch(self, max_bytes: int) -> pb.PeerBatch:
        batch = pb.PeerBatch()
        size = 0
        cluster_id = self.owner.cluster_id
        observer = self.owner.observer
        while self.outbox and size < max_bytes:
            m = self.outbox.popleft()
            if isinstance(m, SnapshotRequest):
                self._start_snapshot(m)
                continue
            entry_bytes = 0
            if isinstance(m, AppendRequest):
                entry_bytes = sum(e.size_bytes() for e in m.entries)
                size += entry_bytes
            batch.messages.append(codec.encode_peer_message(m, cluster_id))
            if observer is not None:
                _observe_sent(observer, m, entry_bytes)
        return batch

    def _note_failure(self, exc: Exception) -> None:
        if self.owner.observer is not None:
            self.owner.observer.on_peer_rpc("Stream", self.peer_id, 0.0, False)
        if not self.failing:
            self.failing = True
            reason = (
                exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else type(exc).__name__
            )
            log.info("peer %d at %s unreachable: %s", self.peer_id, self.address, reason)
            self.owner.inbox.report_unreachable(self.peer_id)

    # ---------------------------------------------------------------- snapshots
    def _start_snapshot(self, m: SnapshotRequest) -> None:
        if self.snapshot_task is not None and not self.snapshot_task.done():
            return  # one stream at a time; the core asks again if this one fails
        self.snapshot_task = asyncio.create_task(self._stream_snapshot(m))

    async def _stream_snapshot(self, m: SnapshotRequest) -> None:
        ok = False
        try:
            ok = await self._stream(m)
        except Exception as exc:  # any failure only means "not delivered": the core retries
            log.warning("snapshot to peer %d failed: %s", self.peer_id, exc)
        if self.owner.observer is not None:
            self.owner.observer.on_snapshot_sent(self.peer_id, ok)
        self.owner.inbox.report_snapshot(self.peer_id, ok)

    async def _stream(self, m: SnapshotRequest) -> bool:
        loop = asyncio.get_running_loop()
        reader = self.owner.reader
        index, term, pieces = await loop.run_in_executor(reader, self.owner.source.open_snapshot)
        log.info("streaming snapshot at index %d term %d to peer %d", index, term, self.peer_id)
        header = codec.encode_snapshot_header(m, self.owner.cluster_id)
        header.meta.index, header.meta.term = index, term
        chunk_bytes = self.owner.config.snapshot_chunk_bytes

        async def chunks() -> AsyncIterator[pb.SnapshotChunk]:
            yield header
            offset, crc = 0, 0
            # One chunk at a time from the reader thread: memory stays bounded by a chunk.
            rechunked = _rechunk(pieces, chunk_bytes)
            while (data := await loop.run_in_executor(reader, next, rechunked, None)) is not None:
                crc = zlib.crc32(data, crc)
                yield pb.SnapshotChunk(offset=offset, data=data)
                offset += len(data)
            yield pb.SnapshotChunk(offset=offset, done=True, crc32c=crc)

        await self.stub.InstallSnapshot(chunks(), timeout=self.owner.config.snapshot_timeout_s)
        return True

    async def close(self) -> None:
        self.task.cancel()
        if self.snapshot_task is not None:
            self.snapshot_task.cancel()
        await self.channel.close(grace=None)


def _observe_sent(observer: PeerObserver, m: Message, entry_bytes: int) -> None:
    if isinstance(m, AppendRequest):
        observer.on_message_sent("AppendRequest", len(m.entries), entry_bytes, True)
    elif isinstance(m, AppendResponse):
        observer.on_message_sent("AppendResponse", 0, 0, m.success)
    elif isinstance(m, VoteResponse):
        kind = "PreVoteResponse" if m.pre_vote else "VoteResponse"
        observer.on_message_sent(kind, 0, 0, m.granted)
    else:
        observer.on_message_sent(type(m).__name__, 0, 0, True)


def _rechunk(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Re-cut a byte stream into ``size``-byte chunks (the last may be shorter)."""
    buf = bytearray()
    for piece in pieces:
        buf += piece
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


class GrpcTransport:
    """:class:`raftkv.node.protocols.Transport` over grpc.aio."""

    def __init__(
        self,
        *,
        cluster_id: str,
        node_id: NodeId,
        peers: Mapping[NodeId, str],
        inbox: Inbox,
        source: SnapshotSource,
        config: TransportConfig,
        observer: PeerObserver | None = None,
        credentials: Any = None,
    ) -> None:
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.inbox = inbox
        self.source = source
        self.config = config
        self.observer = observer
        self.credentials = credentials
        """grpc.ChannelCredentials for peer channels (None: plaintext)."""
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raftkv-snap-read")
        self._addresses = {p: a for p, a in peers.items() if p != node_id}
        self._peers: dict[NodeId, _Peer] = {}
        self._warned: set[int] = set()
        self._closed = False

    def send(self, messages: Sequence[Message]) -> None:
        if self._closed:
            return
        for m in messages:
            peer = self._peers.get(m.to_id)
            if peer is None:
                peer = self._connect(m.to_id)
                if peer is None:
                    continue
            peer.enqueue(m)

    def _connect(self, peer_id: NodeId) -> _Peer | None:
        address = self._addresses.get(peer_id)
        if address is None:
            if peer_id not in self._warned:
                self._warned.add(peer_id)
                log.warning("no address known for node %d; its messages are dropped", peer_id)
            return None
        peer = _Peer(self, peer_id, address)
        self._peers[peer_id] = peer
        return peer

    def address_of(self, node_id: int) -> str | None:
        return self._addresses.get(NodeId(node_id))

    def set_address(self, peer_id: NodeId, address: str) -> None:
        """Send to ``peer_id`` at ``address`` from now on (membership changes; a changed
        address drops the old channel and reconnects on the next send)."""
        if peer_id == self.node_id or self._addresses.get(peer_id) == address:
            return
        self._addresses[peer_id] = address
        self._warned.discard(peer_id)
        peer = self._peers.pop(peer_id, None)
        if peer is not None:
            task = asyncio.create_task(peer.close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    async def close(self) -> None:
        self._closed = True
        for peer in self._peers.values():
            with contextlib.suppress(Exception):
                await peer.close()
        self._peers.clear()
        self.reader.shutdown(wait=False, cancel_futures=True)
