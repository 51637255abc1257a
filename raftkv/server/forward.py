"""Forwarding client requests from a follower to the leader over gRPC.

Rules: one channel per leader address, reused; the caller's remaining deadline goes along; the
leader's status and message come back unchanged (so a client sees the leader's own answer).
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from raftkv.pb import kv_pb2_grpc
from raftkv.server.context import FORWARDED_KEY


class ForwardedError(Exception):
    """The leader answered with an error status; relay it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class Forwarder:
    def __init__(self, options: list[tuple[str, int]]) -> None:
        self._options = options
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(address, options=self._options)
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
                request, timeout=timeout, metadata=((FORWARDED_KEY, "1"),)
            )
        except grpc.aio.AioRpcError as exc:
            raise ForwardedError(exc.code(), exc.details() or exc.code().name) from None

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()
