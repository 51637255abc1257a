"""The only part of the client that touches grpc: channels, one attempt of an RPC, its metadata.

Rules:
- One grpc.aio channel per address, created lazily on the running loop and reused by every
  concurrent call (HTTP/2 multiplexes them over one connection).
- One attempt = one RPC to one address with one timeout. It either returns the response and the
  leader hint, or raises :class:`AttemptFailed` carrying the status, the hint and whether a raftkv
  server produced the status. Retrying is the caller's business (see ``_policy``).
- Channel options keep reconnects quick (a restarted node is used again within about a second)
  and allow responses as large as a scan page of big values.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from raftkv.client._policy import LEADER_METADATA_KEY, SERVER_METADATA_PREFIX
from raftkv.pb import kv_pb2

__all__ = [
    "CLIENT_CLOSED",
    "RPCS",
    "AttemptFailed",
    "ChannelPool",
    "Rpc",
    "failed_attempt",
    "read_metadata",
]

log = logging.getLogger(__name__)

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

_CHANNEL_OPTIONS: list[tuple[str, int]] = [
    # Values are up to 1 MiB and a scan page may hold several; the server bounds its pages.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", -1),
    # grpc's default reconnect backoff grows to 120 s; a node back from a crash should be used
    # again quickly, and the client's own retry loop already spaces attempts out.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]


@dataclass(frozen=True, slots=True)
class Rpc(Generic[Req, Resp]):
    """A method of the KV or Cluster service and its response type."""

    path: str
    response_type: type[Resp]


class RPCS:
    """The methods the client calls (paths as in proto/kv.proto, package raftkv.v1)."""

    GET: Rpc[Any, kv_pb2.GetResponse] = Rpc("/raftkv.v1.KV/Get", kv_pb2.GetResponse)
    PUT: Rpc[Any, kv_pb2.PutResponse] = Rpc("/raftkv.v1.KV/Put", kv_pb2.PutResponse)
    DELETE: Rpc[Any, kv_pb2.DeleteResponse] = Rpc("/raftkv.v1.KV/Delete", kv_pb2.DeleteResponse)
    CAS: Rpc[Any, kv_pb2.CompareAndSwapResponse] = Rpc(
        "/raftkv.v1.KV/CompareAndSwap", kv_pb2.CompareAndSwapResponse
    )
    SCAN: Rpc[Any, kv_pb2.ScanResponse] = Rpc("/raftkv.v1.KV/Scan", kv_pb2.ScanResponse)
    STATUS: Rpc[Any, kv_pb2.StatusResponse] = Rpc(
        "/raftkv.v1.Cluster/Status", kv_pb2.StatusResponse
    )
    TRANSFER_LEADER: Rpc[Any, kv_pb2.TransferLeaderResponse] = Rpc(
        "/raftkv.v1.Cluster/TransferLeader", kv_pb2.TransferLeaderResponse
    )
    SNAPSHOT: Rpc[Any, kv_pb2.BackupChunk] = Rpc("/raftkv.v1.Cluster/Snapshot", kv_pb2.BackupChunk)


class AttemptFailed(Exception):
    """One attempt failed with gRPC status ``code`` (a StatusCode name)."""

    def __init__(self, code: str, details: str, *, leader_hint: str | None, server_spoke: bool):
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details
        self.leader_hint = leader_hint
        self.server_spoke = server_spoke

    def copy(self) -> AttemptFailed:
        """The same failure as a new exception object: one per waiting caller, so raising it
        attaches that caller's own traceback."""
        return AttemptFailed(
            self.code, self.details, leader_hint=self.leader_hint, server_spoke=self.server_spoke
        )


CLIENT_CLOSED = AttemptFailed(
    "CANCELLED", "the client was closed", leader_hint=None, server_spoke=False
)
"""What attempts still waiting when the client closes fail with (each gets a copy)."""


def read_metadata(*parts: Iterable[tuple[str, Any]] | None) -> tuple[str | None, bool]:
    """(leader hint, whether any raftkv-* key was present) from metadata collections."""
    hint: str | None = None
    spoke = False
    for part in parts:
        for key, value in part or ():
            if key.startswith(SERVER_METADATA_PREFIX):
                spoke = True
            if key == LEADER_METADATA_KEY:
                text = value.decode() if isinstance(value, bytes) else str(value)
                hint = text or hint
    return hint, spoke


def failed_attempt(error: grpc.aio.AioRpcError) -> AttemptFailed:
    """The AttemptFailed for a failed call: its status, leader hint and whether raftkv spoke."""
    hint, spoke = read_metadata(error.initial_metadata(), error.trailing_metadata())
    code = error.code()
    return AttemptFailed(
        code.name if code is not None else "UNKNOWN",
        error.details() or "",
        leader_hint=hint,
        server_spoke=spoke,
    )


class ChannelPool:
    """Lazily created grpc.aio channels, one per address."""

    def __init__(
        self,
        options: list[tuple[str, Any]] | None = None,
        *,
        credentials: Any = None,
        token: str | None = None,
    ) -> None:
        self._options = _CHANNEL_OPTIONS + list(options or [])
        self._credentials = credentials
        """grpc.ChannelCredentials (None: plaintext)."""
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", "Bearer " + token),) if token else ()
        )
        self._channels: dict[str, Any] = {}
        self._unary_methods: dict[tuple[str, str], Any] = {}

    def channel(self, address: str) -> Any:
        channel = self._channels.get(address)
        if channel is None:
            log.debug("opening channel to %s", address)
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address, options=self._options)
            else:
                channel = grpc.aio.secure_channel(address, self._credentials, options=self._options)
            self._channels[address] = channel
        return channel

    async def unary(
        self, address: str, rpc: Rpc[Req, Resp], request: Req, timeout_s: float
    ) -> tuple[Resp, str | None]:
        """One unary call; returns (response, leader hint) or raises AttemptFailed."""
        method = self._unary_methods.get((address, rpc.path))
        if method is None:  # built once: a multicallable costs about as much as a small call
            method = self.channel(address).unary_unary(
                rpc.path,
                request_serializer=_serialize,
                response_deserializer=rpc.response_type.FromString,
            )
            self._unary_methods[(address, rpc.path)] = method
        call = method(request, timeout=timeout_s, metadata=self._metadata or None)
        try:
            response: Resp = await call
            hint, _ = read_metadata(await call.initial_metadata(), await call.trailing_metadata())
        except grpc.aio.AioRpcError as error:
            raise failed_attempt(error) from error
        return response, hint

    def open_stream(self, address: str, path: str, response_type: type[Message]) -> Any:
        """A bidirectional streaming call to ``address`` with no deadline (it stays open)."""
        method = self.channel(address).stream_stream(
            path, request_serializer=_serialize, response_deserializer=response_type.FromString
        )
        return method(metadata=self._metadata or None)

    async def stream(
        self, address: str, rpc: Rpc[Req, Resp], request: Req, timeout_s: float
    ) -> AsyncIterator[Resp]:
        """A server-streaming call's messages; raises AttemptFailed on failure."""
        method = self.channel(address).unary_stream(
            rpc.path,
            request_serializer=_serialize,
            response_deserializer=rpc.response_type.FromString,
        )
        call = method(request, timeout=timeout_s, metadata=self._metadata or None)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as error:
            raise failed_attempt(error) from error
        finally:
            call.cancel()

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        self._unary_methods.clear()
        for channel in channels.values():
            await channel.close()


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
