"""What the load generator drives: the ``Target`` protocol and raftkv's two targets.

- ``ClientTarget``: raftkv through its client library (``AsyncClient``): what users feel.
- ``RawTarget``: raftkv with ONE grpc.aio unary call per operation sent to the leader: what the
  server alone does. ``UnaryTarget`` is its reusable base (bench/'s etcd target is one too).

Rules: a target raises on failure and ``error_code`` names the failure by its gRPC status code, so
results from different systems compare. Leader discovery is rate limited (``REDISCOVER_EVERY_S``)
and bounded (one round of Status calls, each with a timeout).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Protocol

import grpc
import grpc.aio
from google.protobuf.message import Message

from raftkv.client import AsyncClient
from raftkv.errors import RaftKVError
from raftkv.pb import kv_pb2

REDISCOVER_EVERY_S = 0.05
STATUS_TIMEOUT_S = 1.0
_CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.enable_retries", 0),
]


class Target(Protocol):
    """A system under load. Methods raise on failure; ``error_code`` classifies the error."""

    name: str

    async def start(self) -> None: ...

    async def put(self, key: bytes, value: bytes, timeout_s: float) -> None: ...

    async def get(self, key: bytes, stale: bool, timeout_s: float) -> None: ...

    async def close(self) -> None: ...


def error_code(error: BaseException) -> str:
    """The gRPC status code name for a failure (or the exception's type name)."""
    if isinstance(error, grpc.aio.AioRpcError):
        return str(error.code().name)
    if isinstance(error, RaftKVError):
        return error.status
    if isinstance(error, TimeoutError):
        return "DEADLINE_EXCEEDED"
    return type(error).__name__


class ClientTarget:
    """raftkv through ``raftkv.client.AsyncClient`` (routing, retries, sessions included)."""

    def __init__(self, endpoints: Sequence[str], *, name: str = "raftkv-client",
                 timeout_s: float = 5.0) -> None:
        self.name = name
        self._client = AsyncClient(list(endpoints), timeout=timeout_s)

    async def start(self) -> None:
        await self._client.status()

    async def put(self, key: bytes, value: bytes, timeout_s: float) -> None:
        await self._client.put(key, value, timeout=timeout_s)

    async def get(self, key: bytes, stale: bool, timeout_s: float) -> None:
        await self._client.get(key, stale=stale, timeout=timeout_s)

    async def close(self) -> None:
        await self._client.close()


class UnaryTarget:
    """One unary call per operation to the (discovered) leader over ``channels`` connections.

    Subclasses give the RPC paths, request builders and how to ask a node who leads.
    """

    put_path = ""
    get_path = ""

    def __init__(self, endpoints: Sequence[str], *, name: str, channels: int = 1) -> None:
        if not endpoints:
            raise ValueError("no endpoints")
        if not 1 <= channels <= 64:
            raise ValueError("channels must be in 1..64")
        self.name = name
        self.endpoints = list(endpoints)
        self.leader = self.endpoints[0]
        self._channels_per_address = channels
        self._channels: dict[str, list[Any]] = {}
        self._next = 0
        self._last_discovery = 0.0
        self._discovering: asyncio.Task[None] | None = None

    # ---- hooks ----

    def put_request(self, key: bytes, value: bytes) -> Message:
        raise NotImplementedError

    def get_request(self, key: bytes, stale: bool) -> Message:
        raise NotImplementedError

    def response_parser(self, path: str) -> Any:
        raise NotImplementedError

    async def ask_leader(self, address: str) -> str | None:
        """The leader's client address as ``address`` sees it, or None."""
        raise NotImplementedError

    # ---- the Target protocol ----

    async def start(self) -> None:
        await self.discover()

    async def put(self, key: bytes, value: bytes, timeout_s: float) -> None:
        await self._call(self.put_path, self.put_request(key, value), timeout_s)

    async def get(self, key: bytes, stale: bool, timeout_s: float) -> None:
        await self._call(self.get_path, self.get_request(key, stale), timeout_s)

    async def close(self) -> None:
        if self._discovering is not None:
            self._discovering.cancel()
        for channels in self._channels.values():
            for channel in channels:
                await channel.close()
        self._channels.clear()

    # ---- machinery ----

    def channel(self, address: str) -> Any:
        channels = self._channels.get(address)
        if channels is None:
            channels = self._channels[address] = [
                grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
                for _ in range(self._channels_per_address)
            ]
        self._next += 1
        return channels[self._next % len(channels)]

    async def unary(self, address: str, path: str, request: Message, timeout_s: float) -> Any:
        call = self.channel(address).unary_unary(
            path,
            request_serializer=type(request).SerializeToString,
            response_deserializer=self.response_parser(path),
        )
        return await call(request, timeout=timeout_s)

    async def _call(self, path: str, request: Message, timeout_s: float) -> None:
        try:
            await self.unary(self.leader, path, request, timeout_s)
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self._maybe_rediscover()
            raise

    def _maybe_rediscover(self) -> None:
        now = time.monotonic()
        if self._discovering is not None and not self._discovering.done():
            return
        if now - self._last_discovery < REDISCOVER_EVERY_S:
            return
        self._last_discovery = now
        self._discovering = asyncio.get_running_loop().create_task(self.discover())

    async def discover(self) -> None:
        """One round: ask every endpoint at once; take the leader most of them name."""
        answers = await asyncio.gather(
            *(self.ask_leader(a) for a in self.endpoints), return_exceptions=True
        )
        named = [a for a in answers if isinstance(a, str) and a]
        if named:
            self.leader = max(set(named), key=named.count)


class RawTarget(UnaryTarget):
    """raftkv's KV service called directly: one Put or Get per operation, no client session."""

    put_path = "/raftkv.v1.KV/Put"
    get_path = "/raftkv.v1.KV/Get"
    status_path = "/raftkv.v1.Cluster/Status"

    def __init__(self, endpoints: Sequence[str], *, name: str = "raftkv-raw",
                 channels: int = 1) -> None:
        super().__init__(endpoints, name=name, channels=channels)

    def put_request(self, key: bytes, value: bytes) -> Message:
        return kv_pb2.PutRequest(key=key, value=value)

    def get_request(self, key: bytes, stale: bool) -> Message:
        consistency = kv_pb2.CONSISTENCY_STALE if stale else kv_pb2.CONSISTENCY_LINEARIZABLE
        return kv_pb2.GetRequest(key=key, consistency=consistency)

    def response_parser(self, path: str) -> Any:
        types: dict[str, Any] = {
            self.put_path: kv_pb2.PutResponse,
            self.get_path: kv_pb2.GetResponse,
            self.status_path: kv_pb2.StatusResponse,
        }
        return types[path].FromString

    async def ask_leader(self, address: str) -> str | None:
        status = await self.unary(
            address, self.status_path, kv_pb2.StatusRequest(), STATUS_TIMEOUT_S
        )
        if status.role == "leader":
            return address
        return str(status.leader_address) or None
