"""Coalescing against real ``raftkv serve`` processes on loopback (issue 10).

Every network call of the client is recorded (a spy on its channel pool), so a test sees how
many calls carried how many operations.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from raftkv.client import AsyncClient, Client
from raftkv.client._stream import CLOSE_WAIT_S, BatchStreams
from raftkv.errors import InvalidArgument
from raftkv.pb import kv_pb2
from tests.integration.harness import Cluster, ready_cluster

BATCH = "/raftkv.v1.KV/Batch"
STREAM = "/raftkv.v1.KV/BatchStream"


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with ready_cluster(tmp_path_factory.mktemp("batching")) as cluster:
        yield cluster


def recording(client: AsyncClient, addresses: list[str] | None = None) -> list[tuple[str, Any]]:
    """(method path, request) of every network call ``client`` makes from now on: unary calls,
    and each batch sent on a KV.BatchStream (as STREAM and its BatchRequest). The address of
    each is appended to ``addresses`` if given."""
    calls: list[tuple[str, Any]] = []
    pool = client._pool
    unary = pool.unary

    async def spy(address: str, rpc: Any, request: Any, timeout_s: float) -> Any:
        calls.append((rpc.path, request))
        if addresses is not None:
            addresses.append(address)
        return await unary(address, rpc, request, timeout_s)

    pool.unary = spy  # type: ignore[method-assign]
    if client._batcher is None or client._batcher._streams is None:
        return calls  # coalesce=False: unary calls only
    streams = client._batcher._streams
    exchange = streams.exchange

    async def stream_spy(address: str, request: Any, timeout_s: float) -> Any:
        calls.append((STREAM, request.batch))
        if addresses is not None:
            addresses.append(address)
        return await exchange(address, request, timeout_s)

    streams.exchange = stream_spy  # type: ignore[method-assign]
    return calls


def batch_streams(client: AsyncClient) -> BatchStreams:
    """The client's BatchStreams (its one stream per node), which coalescing always has."""
    assert client._batcher is not None and client._batcher._streams is not None
    return client._batcher._streams


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
    batches = [request for path, request in calls if path in (BATCH, STREAM)]
    assert [path for path, _ in calls] == [STREAM] * len(calls), "not all on the stream"
    assert any(len(b.ops) > 1 for b in batches), "no operations shared a batch"
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
    # The get leaves alone, the four that queued behind it share the next batch.
    sent = [(path, len(request.ops)) for path, request in calls]
    assert sent[:2] == [(STREAM, 1), (STREAM, 4)], sent


def test_a_broken_stream_is_replaced_by_the_next_batch(real: Cluster) -> None:
    async def main() -> tuple[Any, Any, bool, Any]:
        async with AsyncClient(endpoints(real), timeout=10.0) as client:
            await client.put("broken/1", "1")
            streams = batch_streams(client)
            ((address, first),) = streams._streams.items()
            first._call.cancel()  # as a dropped connection
            request = kv_pb2.StreamBatchRequest()
            request.batch.ops.add().get.key = b"broken/1"
            answer, _ = await streams.exchange(address, request, 5.0)
            now = streams._streams[address]
            return first, now, now.ended, answer

    first, now, now_ended, answer = asyncio.run(main())
    assert now is not first and first.ended and not now_ended
    assert answer.results[0].get.value == b"1"


def test_closing_a_blocking_client_leaves_no_pending_grpc_task(
    real: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """grpc ends each cancelled stream on a task of its own; Client.close lets those end before
    it closes its loop (else "Task was destroyed but it is pending!" lands on the CLI's stderr;
    it did in about one close of eight)."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    for _ in range(40):
        with Client(endpoints(real), timeout=10.0) as client:
            assert client.get("never-written") is None
        gc.collect()  # the warning is logged when the task is collected
    assert not [r.getMessage() for r in caplog.records if r.name == "asyncio"]


def test_closing_a_client_lets_the_server_end_its_stream(real: Cluster) -> None:
    """Close half-closes the stream and the server ends it: the call finishes with the server's
    OK, not a local CANCELLED whose grpc operations would complete after the loop is gone."""

    async def main() -> tuple[Any, Any]:
        client = AsyncClient(endpoints(real), timeout=10.0)
        await client.put("closing/1", "1")
        streams = list(batch_streams(client)._streams.values())
        await client.close()
        return [await stream._call.code() for stream in streams], streams

    codes, streams = asyncio.run(main())
    assert codes and codes == [grpc.StatusCode.OK] * len(streams)


def test_many_event_loops_with_clients_log_nothing(
    real: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """``asyncio.run`` after ``asyncio.run``, each with a client whose stream was used: grpc's
    one poller per process must find no operation of an earlier, closed loop still in flight
    (else the next loop logs "RuntimeError: Event loop is closed" on the program's stderr)."""
    caplog.set_level(logging.ERROR, logger="asyncio")

    async def main(i: int) -> bytes | None:
        async with AsyncClient(endpoints(real), timeout=10.0) as client:
            await client.put(f"loops/{i}", "v")
            return await client.get(f"loops/{i}")

    for i in range(30):
        assert asyncio.run(main(i)) == b"v"
    assert not [r.getMessage() for r in caplog.records if r.name == "asyncio"]


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
        # The leader of three replicates to one follower at once; the other is lazy.
        (leader,) = [n for n in client.status_all() if n.role == "leader"]
        assert sorted(f.lazy for f in leader.followers) == [False, True]


def test_lone_operations_ride_the_stream_and_survive_a_leader_kill(tmp_path: Path) -> None:
    """kill -9 of the leader breaks the client's stream to it: the operation in flight is
    retried on a new stream to the new leader, and no acknowledged write is lost."""
    with ready_cluster(tmp_path) as cluster:

        async def main() -> tuple[list[Any], list[tuple[str, Any]], list[str]]:
            async with AsyncClient(endpoints(cluster), timeout=15.0) as client:
                addresses: list[str] = []
                calls = recording(client, addresses)
                for i in range(5):
                    await client.put(f"s/{i}", f"v{i}")
                cluster.leader().kill()
                for i in range(5, 10):
                    await client.put(f"s/{i}", f"v{i}")
                values = [await client.get(f"s/{i}") for i in range(10)]
                return values, calls, addresses

        values, calls, addresses = asyncio.run(main())
    assert values == [f"v{i}".encode() for i in range(10)]
    assert {path for path, _ in calls} == {STREAM}, "a lone operation left as a unary call"
    assert len(set(addresses)) >= 2, "the same node answered before and after its kill"


def test_closing_gives_up_on_a_stopped_server_after_the_wait(tmp_path: Path) -> None:
    """A node that never ends the stream (SIGSTOP) holds close for CLOSE_WAIT_S, no longer;
    then the stream is cancelled."""
    with ready_cluster(tmp_path) as cluster:

        async def main() -> tuple[float, Any]:
            client = AsyncClient(endpoints(cluster), timeout=10.0)
            await client.put("stopped/1", "1")
            ((address, stream),) = batch_streams(client)._streams.items()
            (node,) = [node for node in cluster.nodes if node.address == address]
            assert node.proc is not None
            node.proc.send_signal(signal.SIGSTOP)
            try:
                started = time.monotonic()
                await client.close()
                took = time.monotonic() - started
            finally:
                node.proc.send_signal(signal.SIGCONT)
            return took, await stream._call.code()

        took, code = asyncio.run(main())
    assert CLOSE_WAIT_S <= took < CLOSE_WAIT_S + 2.0
    assert code == grpc.StatusCode.CANCELLED
