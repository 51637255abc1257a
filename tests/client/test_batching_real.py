"""Coalescing against real ``raftkv serve`` processes on loopback (issue 10).

Every network call of the client is recorded (a spy on its channel pool), so a test sees how
many calls carried how many operations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from raftkv.client import AsyncClient, Client
from raftkv.errors import InvalidArgument
from tests.integration.harness import Cluster

BATCH = "/raftkv.v1.KV/Batch"


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("batching"))
    cluster.start()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()


def recording(client: AsyncClient) -> list[tuple[str, Any]]:
    """(method path, request) of every unary call ``client`` makes from now on."""
    calls: list[tuple[str, Any]] = []
    pool = client._pool
    unary = pool.unary

    async def spy(address: str, rpc: Any, request: Any, timeout_s: float) -> Any:
        calls.append((rpc.path, request))
        return await unary(address, rpc, request, timeout_s)

    pool.unary = spy  # type: ignore[method-assign]
    return calls


def endpoints(cluster: Cluster) -> list[str]:
    return [node.address for node in cluster.nodes]


def test_64_concurrent_puts_and_gets_use_few_calls_and_get_their_own_values(
    real: Cluster,
) -> None:
    async def main() -> tuple[list[Any], list[Any], list[tuple[str, Any]]]:
        async with AsyncClient(endpoints(real), timeout=10.0) as client:
            await client.put("warm", "up")  # learn the leader
            calls = recording(client)
            puts = await asyncio.gather(*(client.put(f"r/{i}", f"v{i}") for i in range(64)))
            assert puts == [None] * 64
            gets = await asyncio.gather(*(client.get(f"r/{i}") for i in range(64)))
            stale = await asyncio.gather(*(client.get(f"r/{i}", stale=True) for i in range(64)))
            return gets, stale, calls

    gets, stale, calls = asyncio.run(main())
    assert gets == [f"v{i}".encode() for i in range(64)]
    # Stale reads may lag a follower, but a value is never another key's.
    assert all(v in (None, f"v{i}".encode()) for i, v in enumerate(stale))
    batches = [request for path, request in calls if path == BATCH]
    assert batches, "no KV.Batch call was made"
    assert len(calls) <= 3 * 8, f"{len(calls)} calls for 192 operations"
    assert sum(len(b.ops) for b in batches) + len(calls) - len(batches) == 3 * 64


def test_one_bad_operation_in_a_real_batch_does_not_affect_the_others(real: Cluster) -> None:
    async def main() -> tuple[list[Any], list[tuple[str, Any]]]:
        # No client-side key check, so the server refuses the long key inside the batch.
        async with AsyncClient(endpoints(real), timeout=10.0, max_key_bytes=None) as client:
            await client.put("cas-key", "current")
            calls = recording(client)
            results = await asyncio.gather(
                client.get("cas-key"),  # leaves alone
                client.put("x" * 5000, "too long a key"),
                client.cas("cas-key", "wrong", "new"),
                client.put("b/good", "y"),
                client.cas("cas-key", "current", "swapped"),
                return_exceptions=True,
            )
            after = await asyncio.gather(client.get("cas-key"), client.get("b/good"))
            return [*results, *after], calls

    results, calls = asyncio.run(main())
    assert results[0] in (b"current", b"swapped")  # concurrent with the cas
    assert isinstance(results[1], InvalidArgument)
    assert results[2:] == [False, None, True, b"swapped", b"y"]
    assert [len(request.ops) for path, request in calls if path == BATCH] == [4]


def test_coalesce_off_uses_unary_calls_against_a_real_cluster(real: Cluster) -> None:
    async def main() -> list[tuple[str, Any]]:
        async with AsyncClient(endpoints(real), timeout=10.0, coalesce=False) as client:
            await client.put("warm", "up")
            calls = recording(client)
            await asyncio.gather(*(client.put(f"u/{i}", "v") for i in range(32)))
            return calls

    calls = asyncio.run(main())
    assert [path for path, _ in calls] == ["/raftkv.v1.KV/Put"] * 32


def test_sync_client_against_a_real_cluster(real: Cluster) -> None:
    with Client(endpoints(real), timeout=10.0) as client:
        client.put("sync", "1")
        assert client.get("sync") == b"1"
        assert client.cas("sync", "1", "2") is True
        assert client.delete("sync") is True
