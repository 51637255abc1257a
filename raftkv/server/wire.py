"""The one server interceptor: malformed requests and access checks, before any servicer runs.

Rules:
- Bytes that do not parse as the method's request message are answered INVALID_ARGUMENT with the
  message type's name (grpc.aio alone answers UNKNOWN and logs a traceback per request, which a
  hostile client could use to flood the logs). On streams each message is checked as it arrives.
- Client requests over ``max_request_bytes`` (every method but Raft's and KV.Batch's, which carry
  peer traffic and forwarded batches) are answered RESOURCE_EXHAUSTED before parsing: the
  server's own receive limit must be as large as a Raft message, this one is a client's.
- When a :class:`~raftkv.server.auth.Guard` applies to the method, it decides before the
  servicer runs (UNAUTHENTICATED / PERMISSION_DENIED, see :mod:`raftkv.server.auth`).
- Wrapped handlers are built once per method and cached: per call the cost is one coroutine
  frame (and, on request streams, one async-generator step per message).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from raftkv.server.auth import Guard, Need, need_of

log = logging.getLogger(__name__)

Admit = Callable[[Any], Awaitable[None]]


class _Refused:
    """Stands in for a request refused before parsing: malformed, or over the size limit."""

    __slots__ = ("size",)

    def __init__(self, size: int = 0) -> None:
        self.size = size


_MALFORMED = _Refused()


def _lenient(deserializer: Any, max_bytes: int | None) -> Any:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        if max_bytes is not None and len(data) > max_bytes:
            return _Refused(len(data))
        try:
            return deserializer(data)
        except Exception:  # DecodeError and friends: the servicer answers INVALID_ARGUMENT
            return _MALFORMED

    return deserialize


_BATCH_METHODS = ("/raftkv.v1.KV/Batch", "/raftkv.v1.KV/BatchStream")


def _limit_of(method: str, max_request_bytes: int | None) -> int | None:
    """Client requests are bounded by ``max_request_bytes``; peer traffic and KV.Batch (which
    followers fill with forwarded operations) only by the server's message limit."""
    if method.startswith("/raftkv.v1.Raft/") or method in _BATCH_METHODS:
        return None
    return max_request_bytes


def _type_name(deserializer: Any) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request"))


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        guard: Guard,
        on_refused: Callable[[str], None] | None = None,
        max_request_bytes: int | None = None,
    ) -> None:
        self._guard = guard
        self._on_refused = on_refused
        self._max_request_bytes = max_request_bytes
        self._cache: dict[str, Any] = {}

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        method = details.method
        wrapped = self._cache.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(details)
        if handler is None:
            return None
        need = need_of(method)
        admit = self._admit(method, need) if self._guard.applies(need) else None
        wrapped = _wrap(handler, admit, _limit_of(method, self._max_request_bytes))
        if len(self._cache) < 256:
            self._cache[method] = wrapped
        return wrapped

    def _admit(self, method: str, need: Need) -> Admit:
        guard, on_refused = self._guard, self._on_refused

        async def admit(context: Any) -> None:
            refusal = guard.check(method, need, context.invocation_metadata(), context)
            if refusal is not None:
                code, message = refusal
                log.info("refused %s: %s", method, code.name)  # never the token
                if on_refused is not None:
                    on_refused(code.name)
                await context.abort(code, message)

        return admit


def _wrap(handler: Any, admit: Admit | None, max_bytes: int | None) -> Any:
    """The same handler: requests parsed leniently, ``admit(context)`` run first."""
    deserializer = handler.request_deserializer
    name = _type_name(deserializer)
    kwargs = {
        "request_deserializer": _lenient(deserializer, max_bytes),
        "response_serializer": handler.response_serializer,
    }

    async def check(request: Any, context: Any) -> None:
        if admit is not None:
            await admit(context)
        if request is _MALFORMED:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {name} message"
            )
        if isinstance(request, _Refused):
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                # "message too large" tells the client not to retry (raftkv.client._policy).
                f"message too large: the request is {request.size} bytes, over this node's limit "
                f"of {max_bytes} (max_request_bytes); keys and values have smaller limits",
            )

    async def each(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, _Refused):
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"a streamed message is not a valid {name} message (or over the size limit)",
                )
            yield request

    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: Any) -> Any:
            await check(request, context)
            return await inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
    if handler.stream_unary is not None:
        inner_su = handler.stream_unary

        async def stream_unary(requests: Any, context: Any) -> Any:
            await check(None, context)
            return await inner_su(each(requests, context), context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream
        if not inspect.isasyncgenfunction(inner_us):  # writes with context.write itself

            async def unary_write(request: Any, context: Any) -> None:
                await check(request, context)
                await inner_us(request, context)

            return grpc.unary_stream_rpc_method_handler(unary_write, **kwargs)

        async def unary_stream(request: Any, context: Any) -> Any:
            await check(request, context)
            async for response in inner_us(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kwargs)
    inner_ss = handler.stream_stream
    if not inspect.isasyncgenfunction(inner_ss):

        async def stream_write(requests: Any, context: Any) -> None:
            await check(None, context)
            await inner_ss(each(requests, context), context)

        return grpc.stream_stream_rpc_method_handler(stream_write, **kwargs)

    async def stream_stream(requests: Any, context: Any) -> Any:
        await check(None, context)
        async for response in inner_ss(each(requests, context), context):
            yield response

    return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)
