"""KV.BatchStream: KV.Batch over one long-lived stream, answered by id (real nodes over gRPC)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc

from raftkv.pb import kv_pb2

from .nodes import Nodes
from .test_batch import INVALID, get_op, put_op, requests, run


def timed(server: Any, method: str) -> float:
    """Observations in the node's raftkv_client_request_duration_seconds{method}."""
    child = server.metrics.client_latency.labels(method)
    return float(sum(bucket.get() for bucket in child._buckets))


def batch(ident: int, *ops: kv_pb2.BatchOp, timeout_ms: int = 5000) -> kv_pb2.StreamBatchRequest:
    request = kv_pb2.StreamBatchRequest(id=ident, timeout_ms=timeout_ms)
    request.batch.ops.extend(ops)
    return request


async def answers(
    call: Any, n: int, within_s: float = 10.0
) -> dict[int, kv_pb2.StreamBatchResponse]:
    got: dict[int, kv_pb2.StreamBatchResponse] = {}
    while len(got) < n:
        response = await asyncio.wait_for(call.read(), within_s)
        assert response is not grpc.aio.EOF, "the stream ended early"
        assert response.id not in got, f"answered {response.id} twice"
        got[response.id] = response
    return got


def test_batches_on_one_stream_are_answered_by_id_and_a_refused_one_fails_alone(
    tmp_path: Path,
) -> None:
    async def body(nodes: Nodes) -> None:
        leader = nodes.leader()
        limit = leader.settings.limits.max_batch_ops
        call = nodes.stub(leader).BatchStream()
        metadata = dict(await call.initial_metadata())
        assert metadata["raftkv-node"] == str(leader.settings.node_id)
        await call.write(batch(7, put_op(b"s/a", b"1", client_id=501, seq=1)))
        await call.write(batch(8, *(get_op(b"s/x", stale=True) for _ in range(limit + 1))))
        await call.write(batch(9, put_op(b"s/b", b"2", client_id=501, seq=2), get_op(b"")))
        got = await answers(call, 3)
        assert got[7].batch.results[0].WhichOneof("result") == "put"
        assert not got[8].HasField("batch")
        assert got[8].error.code == INVALID and "max_batch_ops" in got[8].error.message
        assert got[9].batch.results[0].WhichOneof("result") == "put"
        assert got[9].batch.results[1].error.code == INVALID  # an empty key fails alone
        assert {r.leader for r in got.values()} == {leader.settings.listen}
        # The stream is still open after the refusal: a later batch sees both writes.
        await call.write(batch(10, get_op(b"s/a"), get_op(b"s/b")))
        later = (await answers(call, 1))[10].batch.results
        assert [r.get.value for r in later] == [b"1", b"2"]
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
        assert requests(leader, "Batch", "OK") == 3
        assert requests(leader, "Batch", "INVALID_ARGUMENT") == 1
        assert requests(leader, "Put", "OK") == 2
        # Timed under the ops' own methods too, once per batch that has any (batches 9 and 10
        # for Get; 8 was refused whole): latency panels see clients that batch.
        assert timed(leader, "Put") == 2 and timed(leader, "Get") == 2

    run(tmp_path, body)


def test_batches_sent_before_the_client_closes_its_side_are_still_answered(
    tmp_path: Path,
) -> None:
    async def body(nodes: Nodes) -> None:
        follower = nodes.follower()  # its writes are forwarded to the leader
        call = nodes.stub(follower).BatchStream()
        for n in range(3):
            await call.write(batch(n + 1, put_op(b"c/%d" % n, b"v", client_id=502, seq=n + 1)))
        await call.done_writing()
        got = await answers(call, 3)
        assert await call.read() is grpc.aio.EOF
        assert all(r.batch.results[0].WhichOneof("result") == "put" for r in got.values())
        assert {r.leader for r in got.values()} == {nodes.leader().settings.listen}
        values = await nodes.batch(nodes.leader(), [get_op(b"c/%d" % n) for n in range(3)])
        assert [r.get.value for r in values] == [b"v"] * 3

    run(tmp_path, body)


def test_a_streamed_batch_past_its_timeout_is_answered_deadline_exceeded(tmp_path: Path) -> None:
    async def body(nodes: Nodes) -> None:
        leader = nodes.leader()
        for server in nodes.servers:
            if server is not leader:
                await server.stop()  # no quorum: a linearizable get cannot complete
        call = nodes.stub(leader).BatchStream()
        await call.write(batch(1, get_op(b"t/x"), timeout_ms=300))
        got = (await answers(call, 1, within_s=3.0))[1]  # not the server's 10 s default
        result = got.batch.results[0] if got.HasField("batch") else got
        code = result.error.code
        assert code in (
            grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
            grpc.StatusCode.UNAVAILABLE.value[0],
        ), result
        call.cancel()

    run(tmp_path, body)
