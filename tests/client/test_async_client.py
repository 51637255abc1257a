"""AsyncClient against the fake cluster: the same engine, awaited, with concurrent operations."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from raftkv.client import AsyncClient
from raftkv.errors import Timeout, Unavailable
from tests.client.fakes import FakeCluster, Fault, unused_address


def fast(endpoints: list[str], **options: object) -> AsyncClient:
    return AsyncClient(endpoints, backoff_base=0.001, backoff_max=0.01, **options)  # type: ignore[arg-type]


def test_basic_operations(cluster: FakeCluster) -> None:
    async def main() -> None:
        async with fast(cluster.addresses) as client:
            assert await client.put("a", "1") is None
            assert await client.get("a") == b"1"
            assert await client.cas("a", "1", "2") is True
            assert await client.put("a", "3", return_previous=True) == b"2"
            assert await client.delete("a") is True
            assert await client.get("a") is None
            assert (await client.status()).role == "leader"

    asyncio.run(main())


def test_concurrent_writes_get_distinct_sequences_and_share_leader(cluster: FakeCluster) -> None:
    cluster.state.leader = 1

    async def main() -> AsyncClient:
        async with fast(cluster.addresses) as client:
            await client.get("warm-up")  # learn the leader
            await asyncio.gather(*(client.put(f"k{i}", str(i)) for i in range(50)))
            return client

    client = asyncio.run(main())
    puts = cluster.requests("Put")
    assert len(puts) == 50
    assert {r.node for r in puts} == {1}
    assert {r.request.session.client_id for r in puts} == {client.client_id}
    assert sorted(r.request.session.sequence for r in puts) == list(range(1, 51))
    assert len(cluster.state.store) == 50


def test_concurrent_failover(cluster: FakeCluster) -> None:
    # Every operation fails once at the dead first endpoint, then all settle on a live one.
    async def main() -> None:
        async with fast([unused_address(), *cluster.addresses]) as client:
            await asyncio.gather(*(client.put(f"k{i}", "v") for i in range(20)))

    asyncio.run(main())
    assert len(cluster.state.store) == 20
    assert len(cluster.state.applied) == 20


def test_async_scan(cluster: FakeCluster) -> None:
    for i in range(5):
        cluster.state.store[f"s{i}".encode()] = b"v"

    async def main() -> list[bytes]:
        async with fast(cluster.addresses) as client:
            return [key async for key, _ in client.scan("s", limit=4)]

    assert asyncio.run(main()) == [b"s0", b"s1", b"s2", b"s3"]


def test_ambiguous_then_definite_write_is_timeout(cluster: FakeCluster) -> None:
    cluster.inject(Fault("Delete", "apply_then_abort", grpc.StatusCode.CANCELLED, "cancelled"))
    cluster.inject(*[Fault("Delete", "abort", grpc.StatusCode.UNAVAILABLE, "no leader")] * 1000)

    async def main() -> None:
        async with fast(cluster.addresses, timeout=0.3) as client:
            await client.delete("a")

    with pytest.raises(Timeout, match="outcome unknown"):
        asyncio.run(main())


def test_transport_unavailable_without_server_metadata_is_ambiguous(cluster: FakeCluster) -> None:
    # A connection that breaks mid-call (no raftkv metadata, not a connect failure) may have
    # carried the write: the client must not report "not applied".
    cluster.inject(Fault("Put", "no_metadata_abort", grpc.StatusCode.UNAVAILABLE, "Socket closed"))
    cluster.inject(*[Fault("Put", "abort", grpc.StatusCode.UNAVAILABLE, "no leader")] * 1000)

    async def main() -> None:
        async with fast(cluster.addresses, timeout=0.3) as client:
            await client.put("a", "1")

    with pytest.raises(Timeout):
        asyncio.run(main())


def test_reads_after_definite_failures_are_unavailable(cluster: FakeCluster) -> None:
    cluster.inject(*[Fault("Get", "abort", grpc.StatusCode.UNAVAILABLE, "no leader")] * 1000)

    async def main() -> None:
        async with fast(cluster.addresses, timeout=0.3) as client:
            await client.get("a")

    with pytest.raises(Unavailable, match="no leader"):
        asyncio.run(main())


def test_writes_beyond_the_session_window_wait_their_turn(cluster: FakeCluster) -> None:
    async def main() -> None:
        async with fast(cluster.addresses, session_window=4) as client:
            await asyncio.gather(*(client.put(f"k{i}", "v") for i in range(30)))

    asyncio.run(main())
    seqs = [r.request.session.sequence for r in cluster.requests("Put")]
    assert sorted(seqs) == list(range(1, 31))
    # In arrival order, no request ran more than 3 ahead of the oldest unanswered one.
    for n, seq in enumerate(seqs):
        assert seq - min(seqs[n:]) < 4
