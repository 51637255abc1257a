"""KV.Batch on the batch-native path: each op keeps its own outcome, the batch shares the cost.

Real nodes over gRPC (tests/server/nodes.py), looked at from inside: the leader's writes go to
the driver as one input, a batch's linearizable gets share one ReadIndex and one reader job, on
the leader and on a follower alike.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc

from raftkv.node.driver import Driver
from raftkv.pb import kv_pb2
from raftkv.server.app import NodeServer

from .nodes import Nodes, running

INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
_client_ids = itertools.count(1000)


def run(root: Path, test: Callable[[Nodes], Coroutine[Any, Any, None]]) -> None:
    async def body() -> None:
        async with running(root) as nodes:
            await test(nodes)

    asyncio.run(asyncio.wait_for(body(), 90))


def put_op(
    key: bytes, value: bytes, *, client_id: int = 0, seq: int = 0, return_previous: bool = False
) -> kv_pb2.BatchOp:
    session = kv_pb2.Session(client_id=client_id, sequence=seq)
    return kv_pb2.BatchOp(
        put=kv_pb2.PutRequest(
            key=key, value=value, session=session, return_previous=return_previous
        )
    )


def get_op(key: bytes, *, stale: bool = False) -> kv_pb2.BatchOp:
    consistency = kv_pb2.CONSISTENCY_STALE if stale else kv_pb2.CONSISTENCY_LINEARIZABLE
    return kv_pb2.BatchOp(get=kv_pb2.GetRequest(key=key, consistency=consistency))


def requests(server: NodeServer, method: str, code: str) -> float:
    """The node's raftkv_client_requests_total{method, code}."""
    value: float = server.metrics.client_requests.labels(method, code)._value.get()
    return value


class ReadCounter:
    """Counts a node's Driver.read_index calls, its core's ReadIndex rounds and its reader jobs."""

    def __init__(self, server: NodeServer) -> None:
        self.server = server
        self.calls = 0
        self.rounds = 0
        driver: Driver = server.driver
        read_index, core_read_index = driver.read_index, driver.node.read_index

        async def counting_read_index() -> int:
            self.calls += 1
            return await read_index()

        def counting_core_read_index(context: int) -> None:
            self.rounds += 1
            core_read_index(context)

        driver.read_index = counting_read_index  # type: ignore[method-assign,assignment]
        driver.node.read_index = counting_core_read_index  # type: ignore[method-assign]
        self._jobs_at_start = server.context.reader.jobs

    @property
    def reader_jobs(self) -> int:
        return self.server.context.reader.jobs - self._jobs_at_start


def test_a_batch_of_puts_is_applied_in_order_each_with_its_own_result(tmp_path: Path) -> None:
    async def test(nodes: Nodes) -> None:
        leader = nodes.leader()
        client = next(_client_ids)
        ops = [
            put_op(b"same", b"v%d" % i, client_id=client, seq=i + 1, return_previous=True)
            for i in range(60)
        ]
        results = await nodes.batch(leader, ops)
        assert all(r.WhichOneof("result") == "put" for r in results), results
        indexes = [r.put.index for r in results]
        assert indexes == list(range(indexes[0], indexes[0] + 60)), "one entry each, in order"
        assert not results[0].put.had_previous
        for i, r in enumerate(results[1:], start=1):
            assert r.put.had_previous and r.put.previous == b"v%d" % (i - 1)
        (got,) = await nodes.batch(leader, [get_op(b"same")])
        assert got.get.found and got.get.value == b"v59" and got.get.index >= indexes[-1]
        # Resent (a client retry): answered from the session table, the same results.
        again = await nodes.batch(leader, ops[:3])
        assert [r.put.index for r in again] == indexes[:3]

    run(tmp_path, test)


def test_an_invalid_op_fails_alone_naming_the_limit(tmp_path: Path) -> None:
    async def test(nodes: Nodes) -> None:
        leader = nodes.leader()
        limits = leader.settings.limits
        long_key = b"k" * (limits.max_key_bytes + 1)
        ops = [
            put_op(b"ok1", b"1"),
            put_op(long_key, b"x"),
            get_op(long_key),
            put_op(b"big", b"v" * (limits.max_value_bytes + 1)),
            kv_pb2.BatchOp(),
            kv_pb2.BatchOp(get=kv_pb2.GetRequest(key=b"ok1", consistency=7)),  # type: ignore[arg-type]
            put_op(b"ok2", b"2"),
            get_op(b"ok1", stale=True),
        ]
        labels = [
            ("Put", "OK"),
            ("Put", "INVALID_ARGUMENT"),
            ("Get", "INVALID_ARGUMENT"),
            ("Get", "OK"),
            ("Batch", "OK"),
        ]
        before = [requests(leader, *label) for label in labels]
        r = await nodes.batch(leader, ops)
        counted = [requests(leader, *label) - b for label, b in zip(labels, before, strict=True)]
        assert counted == [2, 2, 2, 1, 1], "each op under its own method and code"
        kinds = [x.WhichOneof("result") for x in r]
        assert kinds == ["put", "error", "error", "error", "error", "error", "put", "get"]
        assert all(x.error.code == INVALID for x in r[1:6])
        assert "max_key_bytes" in r[1].error.message and "max_key_bytes" in r[2].error.message
        assert "max_value_bytes" in r[3].error.message
        assert "names no operation" in r[4].error.message
        assert "consistency" in r[5].error.message
        assert r[6].put.index == r[0].put.index + 1
        lin = await nodes.batch(leader, [get_op(b"ok1"), get_op(b"ok2"), get_op(b"big")])
        assert [(g.get.found, g.get.value) for g in lin] == [
            (True, b"1"),
            (True, b"2"),
            (False, b""),
        ]

    run(tmp_path, test)


def test_an_expired_session_fails_only_its_op(tmp_path: Path) -> None:
    async def test(nodes: Nodes) -> None:
        leader = nodes.leader()
        window = 64  # the session window: an unknown client's sequence above it has expired
        ops = [
            put_op(b"s1", b"1", client_id=next(_client_ids), seq=1),
            put_op(b"s2", b"2", client_id=next(_client_ids), seq=window + 1000),
            put_op(b"s3", b"3", client_id=next(_client_ids), seq=1),
        ]
        r = await nodes.batch(leader, ops)
        assert r[0].WhichOneof("result") == "put" and r[2].WhichOneof("result") == "put"
        assert r[1].WhichOneof("result") == "error"
        assert r[1].error.code == FAILED_PRECONDITION and "session" in r[1].error.message
        got = await nodes.batch(leader, [get_op(b"s1"), get_op(b"s2"), get_op(b"s3")])
        assert [g.get.found for g in got] == [True, False, True]

    run(tmp_path, test)


def test_linearizable_gets_share_one_read_index_and_see_every_acknowledged_write(
    tmp_path: Path,
) -> None:
    async def test(nodes: Nodes) -> None:
        leader = nodes.leader()
        follower = nodes.follower()
        keys = [b"g%02d" % i for i in range(40)]
        for round_ in range(3):
            value = b"r%d" % round_
            acked = await nodes.batch(leader, [put_op(k, value + k) for k in keys])
            last = max(a.put.index for a in acked)
            for server in (leader, follower):
                counter = ReadCounter(server)
                ops = [get_op(k) for k in keys] + [get_op(b"missing")]
                r = await nodes.batch(server, ops)
                assert [g.get.value for g in r[:-1]] == [value + k for k in keys]
                assert not r[-1].get.found
                assert all(g.get.index >= last for g in r), "a read point after the writes"
                assert (counter.calls, counter.rounds, counter.reader_jobs) == (1, 1, 1)

    run(tmp_path, test)


def test_a_batch_to_a_follower_forwards_its_writes_and_reads_locally(tmp_path: Path) -> None:
    async def test(nodes: Nodes) -> None:
        follower = nodes.follower()
        forwarded = follower.metrics.forwarded.labels("Put")
        forwarded_before = forwarded._value.get()
        client = next(_client_ids)
        ops = [put_op(b"f%d" % i, b"v%d" % i, client_id=client, seq=i + 1) for i in range(10)] + [
            put_op(b"k" * (follower.settings.limits.max_key_bytes + 1), b"x"),
            put_op(b"f-expired", b"x", client_id=next(_client_ids), seq=10_000),
            get_op(b"f0"),
        ]
        leader = nodes.leader()
        labels = [("Put", "OK"), ("Put", "INVALID_ARGUMENT"), ("Put", "FAILED_PRECONDITION")]
        before = [requests(s, *label) for s in (follower, leader) for label in labels]
        r = await nodes.batch(follower, ops)
        counted = [
            requests(s, *label) - b
            for (s, label), b in zip(
                [(s, label) for s in (follower, leader) for label in labels], before, strict=True
            )
        ]
        assert counted == [10, 1, 1, 0, 0, 0], "counted where the client sent them, once"
        indexes = [x.put.index for x in r[:10]]
        assert indexes == list(range(indexes[0], indexes[0] + 10)), "forwarded as one, in order"
        assert r[10].error.code == INVALID and "max_key_bytes" in r[10].error.message
        assert r[11].error.code == FAILED_PRECONDITION
        assert r[12].WhichOneof("result") == "get"  # concurrent with the puts: either outcome
        assert forwarded._value.get() - forwarded_before == 11  # the valid writes only
        counter = ReadCounter(follower)
        got = await nodes.batch(follower, [get_op(b"f%d" % i) for i in range(10)])
        assert [g.get.value for g in got] == [b"v%d" % i for i in range(10)]
        assert (counter.calls, counter.reader_jobs) == (1, 1)

    run(tmp_path, test)
