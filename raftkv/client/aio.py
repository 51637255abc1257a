"""AsyncClient: the asyncio client, and the ONE implementation of routing, retries and sessions.

Rules:
- Every public call has one overall deadline (``timeout``); attempts, backoff waits and redirects
  all fit inside it. Each attempt is additionally capped at ``attempt_timeout`` so one black-holed
  node cannot eat the whole deadline.
- Writes (put, delete, cas) carry a Session(client_id, sequence). The sequence is taken ONCE per
  write, before the first attempt, and every retry sends the very same request, so the server
  applies the write at most once however often we retry. Sequences in flight stay within the
  server's session window (``_session``); an expired session is renewed only when no attempt
  of the write can have been applied.
- Failures are judged by ``_policy.classify``; a write ends in Timeout if any attempt was
  ambiguous, Unavailable only if every attempt was definitely not applied.
- Linearizable reads, writes and cluster commands go to the cached leader; stale reads go to the
  current endpoint.

Coalescing (issue 10). Every operation reaches the network through one seam: ``_retry(attempt,
...)`` calls ``attempt(address, timeout_s)``, which ``_invoke`` / ``_write`` build from one
self-contained request (a write's session is already inside it). For KV point operations (get,
put, delete, cas) that attempt goes through the per-address ``_batcher.Batcher``: operations
issued concurrently leave together as ONE batch (at most ``max_batches_in_flight`` per address,
at most ``max_batch_ops`` per batch; a lone operation leaves at once, as a batch of one), sent
as a message on a long-lived ``KV.BatchStream`` to that node (``KV.Batch`` calls for a server
without it). Each item's status becomes that operation's AttemptFailed, and a whole-batch
transport failure becomes the same AttemptFailed for every item, so classification, retries and
session sequences stay per operation and batching never weakens at-most-once or per-operation
linearizability. Concurrent writes beyond ``session_window`` wait before being queued, as they
do without batching. ``coalesce=False`` sends every operation as its own unary call.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from google.protobuf.message import Message

from raftkv.client import _members
from raftkv.client._batcher import (
    BATCHABLE,
    DEFAULT_BATCH_OPS,
    DEFAULT_BATCHES_IN_FLIGHT,
    Batcher,
)
from raftkv.client._history import History, session_expired
from raftkv.client._members import MemberList
from raftkv.client._policy import Backoff, Outcome, classify
from raftkv.client._router import Router, parse_endpoints
from raftkv.client._scan import ScanState
from raftkv.client._session import DEFAULT_SESSION_WINDOW, SessionWindow
from raftkv.client._status import gather_status
from raftkv.client._transport import RPCS, AttemptFailed, ChannelPool, Rpc
from raftkv.client.backup import BackupError, BackupWriter
from raftkv.client.credentials import ClientTls
from raftkv.client.types import (
    DEFAULT_MAX_KEY_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    BytesLike,
    Limits,
    NodeStatus,
    ScanPage,
    SnapshotInfo,
    to_bytes,
)
from raftkv.errors import (
    Overloaded,
    ServerError,
    Timeout,
    error_for_status,
)
from raftkv.pb import kv_pb2

__all__ = ["AsyncClient"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Resp = TypeVar("Resp", bound=Message)

DEFAULT_SNAPSHOT_TIMEOUT_S = 600.0
# An attempt needs at least this long to mean anything; less, and we answer with what we know.
_MIN_ATTEMPT_S = 0.02


class AsyncClient:
    """An asyncio client for a raftkv cluster. Use as ``async with AsyncClient(...) as c:``.

    ``endpoints``: "host:port" addresses (a list, or one comma-separated string); any subset of
    the cluster works. ``timeout``: the default overall deadline of each call, in seconds (each
    method also takes ``timeout=``). ``attempt_timeout``: the cap on one attempt, so a hung node
    cannot eat the whole deadline. ``max_key_bytes`` / ``max_value_bytes``: client-side checks
    (None: off), defaulting to the server's default limits. ``backoff_base`` / ``backoff_max``:
    the jittered exponential backoff between attempts, in seconds. ``client_id``: the session id
    (default 63 random bits; two live clients must never share one). ``rng``: the randomness of
    the jitter (tests pass a seeded one). ``channel_options``: extra grpc channel options.
    ``session_window``: at most this many writes in flight (the server's session window, 64).
    ``tls``: TLS files (:class:`~raftkv.client.credentials.ClientTls`; None: plaintext).
    ``token``: a bearer token for clusters that require one (sent on every call, never logged).
    ``coalesce``: send concurrent gets, puts, deletes and cas operations to one node together as
    ``KV.Batch`` calls (False: one unary call each). ``max_batches_in_flight``: at most this many
    such calls outstanding per node; ``max_batch_ops``: at most this many operations in one (the
    server accepts up to its ``max_batch_ops``, 1024 by default).
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        timeout: float = 5.0,
        *,
        attempt_timeout: float = 2.0,
        max_key_bytes: int | None = DEFAULT_MAX_KEY_BYTES,
        max_value_bytes: int | None = DEFAULT_MAX_VALUE_BYTES,
        backoff_base: float = 0.02,
        backoff_max: float = 1.0,
        client_id: int | None = None,
        rng: random.Random | None = None,
        channel_options: list[tuple[str, Any]] | None = None,
        session_window: int = DEFAULT_SESSION_WINDOW,
        tls: ClientTls | None = None,
        token: str | None = None,
        coalesce: bool = True,
        max_batches_in_flight: int = DEFAULT_BATCHES_IN_FLIGHT,
        max_batch_ops: int = DEFAULT_BATCH_OPS,
    ) -> None:
        if timeout <= 0 or attempt_timeout <= 0:
            raise ValueError("timeout and attempt_timeout must be positive")
        self._rng = rng or random.Random()
        self._router = Router(parse_endpoints(endpoints))
        self._pool = ChannelPool(
            channel_options,
            credentials=tls.channel_credentials() if tls is not None else None,
            token=token,
        )
        self._limits = Limits(max_key_bytes=max_key_bytes, max_value_bytes=max_value_bytes)
        self._backoff = Backoff(base_s=backoff_base, max_s=backoff_max, rng=self._rng)
        self._timeout = timeout
        self._attempt_timeout = attempt_timeout
        self._sessions = SessionWindow(client_id, session_window)
        self._batcher = (
            Batcher(self._pool, max_in_flight=max_batches_in_flight, max_ops=max_batch_ops)
            if coalesce
            else None
        )

    @property
    def endpoints(self) -> list[str]:
        return list(self._router.endpoints)

    @property
    def leader(self) -> str | None:
        """The cached leader address, if one is known."""
        return self._router.leader

    @property
    def client_id(self) -> int:
        """The current session's id (a new one is drawn if the server expires the session)."""
        return self._sessions.client_id

    @property
    def timeout(self) -> float:
        return self._timeout

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
        await self._pool.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---- KV ----

    async def get(
        self, key: BytesLike, *, stale: bool = False, timeout: float | None = None
    ) -> bytes | None:
        """The value of ``key``, or None if absent. Linearizable unless ``stale``."""
        request = kv_pb2.GetRequest(key=self._key(key), consistency=_consistency(stale))
        response = await self._invoke(RPCS.GET, request, leader=not stale, timeout=timeout)
        return response.value if response.found else None

    async def put(
        self,
        key: BytesLike,
        value: BytesLike,
        *,
        return_previous: bool = False,
        timeout: float | None = None,
    ) -> bytes | None:
        """Set ``key`` to ``value``; with ``return_previous``, return the old value (or None)."""
        request = kv_pb2.PutRequest(
            key=self._key(key),
            value=self._limits.check_value(to_bytes(value, "value")),
            return_previous=return_previous,
        )
        response = await self._write(RPCS.PUT, request, timeout)
        if return_previous and response.had_previous:
            return response.previous
        return None

    async def delete(self, key: BytesLike, *, timeout: float | None = None) -> bool:
        """Delete ``key``; True if it existed."""
        request = kv_pb2.DeleteRequest(key=self._key(key))
        response = await self._write(RPCS.DELETE, request, timeout)
        return response.deleted

    async def cas(
        self,
        key: BytesLike,
        expected: BytesLike | None,
        new: BytesLike,
        *,
        timeout: float | None = None,
    ) -> bool:
        """Set ``key`` to ``new`` if its value is ``expected`` (None: if it is absent)."""
        request = kv_pb2.CompareAndSwapRequest(
            key=self._key(key),
            expected=b"" if expected is None else to_bytes(expected, "expected"),
            expect_absent=expected is None,
            value=self._limits.check_value(to_bytes(new, "new value")),
        )
        response = await self._write(RPCS.CAS, request, timeout)
        return response.swapped

    async def scan_page(
        self,
        prefix: BytesLike = b"",
        *,
        start: BytesLike | None = None,
        end: BytesLike | None = None,
        limit: int = 0,
        stale: bool = False,
        timeout: float | None = None,
    ) -> ScanPage:
        """One page of keys in order (``limit`` 0: the server's page size)."""
        request = kv_pb2.ScanRequest(
            prefix=to_bytes(prefix, "prefix"),
            start=b"" if start is None else to_bytes(start, "start"),
            end=b"" if end is None else to_bytes(end, "end"),
            limit=limit,
            consistency=_consistency(stale),
        )
        response = await self._invoke(RPCS.SCAN, request, leader=not stale, timeout=timeout)
        return ScanPage(
            items=tuple((item.key, item.value) for item in response.items),
            more=response.more,
            next_start=response.next_start,
        )

    async def scan(
        self,
        prefix: BytesLike = b"",
        *,
        start: BytesLike | None = None,
        end: BytesLike | None = None,
        limit: int | None = None,
        stale: bool = False,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[tuple[bytes, bytes]]:
        """(key, value) pairs in key order, fetched page by page.

        Keys have ``prefix`` and/or lie in [start, end). Each page is read consistently on its
        own (linearizable unless ``stale``); the scan as a whole is not one snapshot.
        ``timeout`` applies to each page.
        """
        state = ScanState(limit, page_size, start)
        while (page_limit := state.next_limit()) is not None:
            page = await self.scan_page(
                prefix, start=state.start, end=end, limit=page_limit, stale=stale, timeout=timeout
            )
            for item in state.take(page):
                yield item

    # ---- Cluster ----

    async def status(self, *, timeout: float | None = None) -> NodeStatus:
        """The status of one node (the leader when reachable: it also reports its followers)."""
        response, address = await self._retry(
            lambda address, t: self._pool.unary(address, RPCS.STATUS, kv_pb2.StatusRequest(), t),
            leader=True,
            write=False,
            timeout=timeout,
        )
        return NodeStatus.from_pb(address, response)

    async def status_all(self, *, timeout: float | None = None) -> list[NodeStatus]:
        """Every node's status: each endpoint and each member they report, down ones marked down.

        One attempt per node, all at once; never raises for unreachable nodes.
        """
        budget = min(self._timeout if timeout is None else timeout, self._attempt_timeout)
        statuses = await gather_status(self._pool, self._router.endpoints, budget)
        for status in statuses:
            if status.up and status.leader_address:
                self._router.record_success(status.address, status.leader_address)
        return statuses

    async def transfer_leader(self, node_id: int, *, timeout: float | None = None) -> int:
        """Ask the cluster to make ``node_id`` the leader; returns the leader id it reports."""
        request = kv_pb2.TransferLeaderRequest(target_id=node_id)
        response = await self._invoke(RPCS.TRANSFER_LEADER, request, timeout=timeout)
        self._router.leader = None  # whatever we cached is about to be wrong
        return response.leader_id

    async def member_list(self, *, timeout: float | None = None) -> MemberList:
        """The members (voters and learners, with addresses) as the leader sees them."""
        request = kv_pb2.MemberListRequest()
        response = await self._invoke(_members.MEMBER_LIST, request, timeout=timeout)
        return MemberList.from_pb(response)

    async def member_add(
        self, node_id: int, address: str, *, learner: bool = False, timeout: float | None = None
    ) -> MemberList:
        """Add node ``node_id`` serving at ``address`` (as a learner: it does not vote yet)."""
        request = kv_pb2.MemberAddRequest(id=node_id, address=address, learner=learner)
        return MemberList.from_pb(await self._invoke(_members.MEMBER_ADD, request, timeout=timeout))

    async def member_promote(self, node_id: int, *, timeout: float | None = None) -> MemberList:
        """Make learner ``node_id`` a voter."""
        request = kv_pb2.MemberPromoteRequest(id=node_id)
        response = await self._invoke(_members.MEMBER_PROMOTE, request, timeout=timeout)
        return MemberList.from_pb(response)

    async def member_remove(self, node_id: int, *, timeout: float | None = None) -> MemberList:
        """Remove member ``node_id`` (voter or learner)."""
        request = kv_pb2.MemberRemoveRequest(id=node_id)
        response = await self._invoke(_members.MEMBER_REMOVE, request, timeout=timeout)
        self._router.leader = None  # the leader may have removed itself
        return MemberList.from_pb(response)

    async def snapshot_save(self, path: str, *, timeout: float | None = None) -> SnapshotInfo:
        """Stream a point-in-time backup of the state to ``path`` (atomically; see backup.py).

        ``timeout`` defaults to 600 s: a backup is as long as the data, unlike other calls.
        """
        total = DEFAULT_SNAPSHOT_TIMEOUT_S if timeout is None else timeout

        async def attempt(address: str, timeout_s: float) -> tuple[SnapshotInfo, str | None]:
            writer = BackupWriter(path)
            try:
                stream = self._pool.stream(
                    address, RPCS.SNAPSHOT, kv_pb2.BackupRequest(), timeout_s
                )
                async for chunk in stream:
                    writer.add(chunk)
                meta = writer.commit()
            except BackupError as error:
                writer.abort()
                raise ServerError(f"bad snapshot stream from {address}: {error}") from None
            except BaseException:
                writer.abort()
                raise
            info = SnapshotInfo(
                path=path,
                index=meta.index,
                term=meta.term,
                cluster_id=meta.cluster_id,
                size_bytes=writer.size_bytes,
            )
            return info, None

        info, _ = await self._retry(
            attempt, leader=True, write=False, timeout=total, attempt_timeout=total
        )
        return info

    # ---- the seam: routing and retries ----

    async def _invoke(
        self,
        rpc: Rpc[Any, Resp],
        request: Message,
        *,
        leader: bool = True,
        timeout: float | None = None,
    ) -> Resp:
        """A request that is safe to repeat (a read or a cluster command)."""
        response, _ = await self._retry(
            lambda address, t: self._attempt(address, rpc, request, t),
            leader=leader,
            write=False,
            timeout=timeout,
        )
        return response

    async def _write(self, rpc: Rpc[Any, Resp], request: Any, timeout: float | None) -> Resp:
        """A write: take a session sequence, run the request to an answer, give it back."""
        loop = asyncio.get_running_loop()
        total = self._timeout if timeout is None else timeout
        started = loop.time()
        session = await self._sessions.acquire(total)
        if session is None:
            raise Overloaded(
                f"{self._sessions.window} writes of this client stayed in flight for {total:g}s; "
                "this one was not sent"
            )
        request.session.CopyFrom(session)

        async def renew_session() -> None:
            request.session.CopyFrom(await self._sessions.renew(request.session))

        try:
            response, _ = await self._retry(
                lambda address, t: self._attempt(address, rpc, request, t),
                leader=True,
                write=True,
                timeout=total - (loop.time() - started),
                renew_session=renew_session,
            )
        finally:
            await self._sessions.release(request.session)
        return response

    async def _attempt(
        self, address: str, rpc: Rpc[Any, Resp], request: Message, timeout_s: float
    ) -> tuple[Resp, str | None]:
        """One attempt: KV point operations ride the batcher, everything else is a unary call."""
        if self._batcher is not None and rpc.path in BATCHABLE:
            return await self._batcher.call(address, rpc, request, timeout_s)
        return await self._pool.unary(address, rpc, request, timeout_s)

    async def _retry(
        self,
        attempt: Callable[[str, float], Awaitable[tuple[T, str | None]]],
        *,
        leader: bool,
        write: bool,
        timeout: float | None,
        attempt_timeout: float | None = None,
        renew_session: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[T, str]:
        """Run ``attempt(address, timeout_s)`` until it succeeds, fails fatally or time runs out.

        Returns the result and the address that produced it. ``renew_session`` (writes only)
        moves the request to a new session when the server says its session expired.
        """
        loop = asyncio.get_running_loop()
        total = self._timeout if timeout is None else timeout
        deadline = loop.time() + total
        per_attempt = self._attempt_timeout if attempt_timeout is None else attempt_timeout
        history = History(endpoints=len(self._router.endpoints))
        while (remaining := deadline - loop.time()) > _MIN_ATTEMPT_S:
            address = self._router.pick(leader=leader)
            try:
                result, hint = await attempt(address, min(remaining, per_attempt))
            except AttemptFailed as failure:
                outcome = classify(failure.code, failure.details, server_spoke=failure.server_spoke)
                log.debug("attempt at %s failed (%s): %s", address, outcome.value, failure)
                if outcome is Outcome.FATAL:
                    if renew_session is None or not session_expired(failure):
                        raise error_for_status(failure.code, failure.details) from None
                    # This attempt was not applied; an earlier one may have been.
                    if history.ambiguous or history.renewed:
                        raise Timeout(f"outcome unknown: {failure.details}") from None
                    history.renewed = True
                    await renew_session()
                    continue
                redirected = self._router.record_failure(address, failure.leader_hint)
                if history.add(failure, outcome, redirected=redirected):
                    delay = self._backoff.delay_s(history.waits)
                    if delay > deadline - loop.time() - _MIN_ATTEMPT_S:
                        break  # no time for another attempt after the wait: answer now
                    await asyncio.sleep(delay)
                continue
            self._router.record_success(address, hint)
            return result, address
        raise history.final_error(write=write, total_s=total)

    # ---- helpers ----

    def _key(self, key: BytesLike) -> bytes:
        return self._limits.check_key(to_bytes(key, "key"))


def _consistency(stale: bool) -> kv_pb2.Consistency:
    return kv_pb2.CONSISTENCY_STALE if stale else kv_pb2.CONSISTENCY_LINEARIZABLE
