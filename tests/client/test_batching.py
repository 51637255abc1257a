"""Coalescing (issue 10): concurrent operations of one AsyncClient leave together as KV.Batch.

Against the fake cluster, which scripts faults per call: failures of one item, of a whole batch,
and hung calls. Against real ``raftkv serve`` processes in test_batching_real.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from raftkv.client import AsyncClient
from raftkv.errors import InvalidArgument, Timeout
from tests.client.fakes import FakeCluster, Fault


def fast(endpoints: list[str], **options: Any) -> AsyncClient:
    options.setdefault("backoff_base", 0.001)
    options.setdefault("backoff_max", 0.01)
    return AsyncClient(endpoints, **options)


async def together(*operations: Awaitable[Any]) -> list[Any]:
    """Run operations concurrently; exceptions are returned in place of results."""
    return list(await asyncio.gather(*operations, return_exceptions=True))


def batch_sizes(cluster: FakeCluster) -> list[int]:
    return [len(r.request.ops) for r in cluster.requests("Batch")]


def test_concurrent_operations_share_batches_and_get_their_own_results(
    cluster: FakeCluster,
) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        async with fast(cluster.addresses) as client:
            await together(*(client.put(f"k{i}", f"v{i}") for i in range(64)))
            gets = await together(*(client.get(f"k{i}") for i in range(64)))
            stale = await together(*(client.get(f"k{i}", stale=True) for i in range(64)))
            return gets, stale

    gets, stale = asyncio.run(main())
    assert gets == [f"v{i}".encode() for i in range(64)]
    assert stale == [f"v{i}".encode() for i in range(64)]
    assert len(cluster.state.applied) == 64
    # The first operation of each round leaves at once on its own; the rest share one batch.
    assert batch_sizes(cluster) == [63, 63, 63]
    assert len(cluster.requests("Put")) == 64


def test_coalesce_off_sends_one_unary_call_per_operation(cluster: FakeCluster) -> None:
    async def main() -> None:
        async with fast(cluster.addresses, coalesce=False) as client:
            await together(*(client.put(f"k{i}", "v") for i in range(20)))
            await together(*(client.get(f"k{i}") for i in range(20)))

    asyncio.run(main())
    assert cluster.requests("Batch") == []
    assert len(cluster.requests("Put")) == 20
    assert len(cluster.requests("Get")) == 20


def test_a_lone_operation_is_sent_at_once_as_its_unary_call(cluster: FakeCluster) -> None:
    async def main() -> None:
        async with fast(cluster.addresses) as client:
            for i in range(5):
                await client.put(f"k{i}", "v")
                assert await client.get(f"k{i}") == b"v"

    asyncio.run(main())
    assert cluster.requests("Batch") == []
    assert len(cluster.requests("Put")) == 5


def test_batch_size_and_calls_in_flight_are_bounded(cluster: FakeCluster) -> None:
    cluster.inject(Fault("Put", "hang"))  # the first call never returns: one call stays busy

    async def main() -> None:
        async with fast(
            cluster.addresses, max_batches_in_flight=2, max_batch_ops=10, attempt_timeout=1.0
        ) as client:
            await together(*(client.put(f"k{i}", "v") for i in range(41)))

    asyncio.run(main())
    sizes = batch_sizes(cluster)
    assert max(sizes) == 10
    assert sum(sizes) >= 40
    assert len(cluster.state.store) == 41


def test_one_failing_operation_does_not_affect_the_others(cluster: FakeCluster) -> None:
    cluster.state.store[b"c"] = b"current"
    # A server-side refusal of one item, a cas that does not match, and plain operations.
    cluster.inject(Fault("Put", "abort", grpc.StatusCode.INVALID_ARGUMENT, "value refused"))

    async def main() -> list[Any]:
        async with fast(cluster.addresses) as client:
            return await together(
                client.get("c"),  # leaves alone
                client.put("bad", "x"),
                client.cas("c", "wrong", "new"),
                client.put("good", "y"),
                client.get("c"),
            )

    results = asyncio.run(main())
    assert batch_sizes(cluster) == [4]
    assert results[0] == b"current"
    assert isinstance(results[1], InvalidArgument) and "value refused" in str(results[1])
    assert results[2:] == [False, None, b"current"]
    assert cluster.state.store == {b"c": b"current", b"good": b"y"}


def test_an_item_told_to_go_elsewhere_is_retried_alone(cluster: FakeCluster) -> None:
    # A definite per-item UNAVAILABLE (the server's own words): only that operation retries.
    cluster.inject(Fault("Put", "abort", grpc.StatusCode.UNAVAILABLE, "not now"))

    async def main() -> list[Any]:
        async with fast(cluster.addresses) as client:
            return await together(*(client.put(f"k{i}", "v") for i in range(8)))

    assert asyncio.run(main()) == [None] * 8
    puts = cluster.requests("Put")
    assert len(puts) == 9
    assert sorted(key[1] for key in cluster.state.applied) == list(range(1, 9))


@pytest.mark.parametrize(
    ("kind", "details"),
    [
        ("apply_then_abort", "Connection reset by peer"),  # ambiguous: applied, answer lost
        ("abort", "leader is stepping down"),  # definite: the server's own UNAVAILABLE
        ("no_metadata_abort", "Socket closed"),  # ambiguous: transport failure
    ],
)
def test_writes_retried_after_a_whole_batch_unavailable_are_applied_once(
    cluster: FakeCluster, kind: str, details: str
) -> None:
    cluster.inject(Fault("Batch", kind, grpc.StatusCode.UNAVAILABLE, details))

    async def main() -> list[Any]:
        async with fast(cluster.addresses) as client:
            return await together(*(client.put(f"k{i}", f"v{i}") for i in range(16)))

    assert asyncio.run(main()) == [None] * 16
    assert cluster.state.store == {f"k{i}".encode(): f"v{i}".encode() for i in range(16)}
    # Every retry carried its write's original session sequence; each applied exactly once.
    assert sorted(seq for _, seq in cluster.state.applied) == list(range(1, 17))
    sequences = {r.request.session.sequence for r in cluster.requests("Put")}
    assert sequences == set(range(1, 17))
    assert batch_sizes(cluster)[0] == 15  # the one that failed as a whole
    if kind == "apply_then_abort":  # applied, then resent with the same sequences
        assert len(cluster.requests("Put")) >= 16 + 15


def test_a_batch_refused_for_its_size_is_retried_as_unary_calls(cluster: FakeCluster) -> None:
    cluster.inject(
        Fault(
            "Batch",
            "abort",
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Received message larger than max (70000000 vs. 67108864)",
        )
    )

    async def main() -> list[Any]:
        async with fast(cluster.addresses) as client:
            return await together(*(client.put(f"k{i}", "v") for i in range(6)))

    assert asyncio.run(main()) == [None] * 6
    assert batch_sizes(cluster) == [5]  # refused whole: none of it ran
    assert len(cluster.requests("Put")) == 6  # the lone first one, then five unary calls
    assert len(cluster.state.applied) == 6


def test_each_item_keeps_its_own_deadline_inside_a_hung_batch(cluster: FakeCluster) -> None:
    cluster.inject(Fault("Batch", "hang"))

    async def timed(operation: Awaitable[Any]) -> tuple[Any, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result = await operation
        except Exception as error:
            result = error
        return result, loop.time() - started

    async def main() -> list[Any]:
        async with fast(cluster.addresses, attempt_timeout=1.0) as client:
            return await together(
                timed(client.get("warm")),  # leaves alone, answered at once
                timed(client.put("short", "v", timeout=0.3)),
                timed(client.put("long", "v", timeout=5.0)),
            )

    (_, _), (short, short_s), (long, long_s) = asyncio.run(main())
    # The short write's attempt ended with its own time (ambiguous: the batch may yet apply it).
    assert isinstance(short, Timeout)
    assert 0.25 <= short_s < 0.9
    # The long one waited out its own attempt timeout, not the short one's, then retried.
    assert long is None
    assert 0.95 <= long_s < 3.0
    assert cluster.state.store.get(b"long") == b"v"


def test_an_operation_whose_time_runs_out_in_the_queue_is_never_sent(cluster: FakeCluster) -> None:
    cluster.inject(Fault("Get", "hang"))

    async def main() -> list[Any]:
        async with fast(cluster.addresses, max_batches_in_flight=1, attempt_timeout=1.0) as client:
            return await together(
                client.get("stuck", timeout=1.5),  # holds the only call in flight for 1 s
                client.put("queued", "v", timeout=0.3),
            )

    stuck, queued = asyncio.run(main())
    assert isinstance(queued, Timeout)
    assert stuck is None  # its retry, after the hung attempt
    assert [r.request.key for r in cluster.requests("Put")] == []
    assert b"queued" not in cluster.state.store


def test_sync_client_shared_by_threads_still_works(make_client: Any, cluster: FakeCluster) -> None:
    client = make_client()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.put(f"k{i}", str(i)), range(40)))
        values = list(pool.map(lambda i: client.get(f"k{i}"), range(40)))
    assert values == [str(i).encode() for i in range(40)]
    assert len(cluster.state.applied) == 40
