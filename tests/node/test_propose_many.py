"""Driver.propose_many: many commands as ONE driver input, each with its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from raftkv.node.config import DriverConfig
from raftkv.node.errors import NotLeaderError, Overloaded
from raftkv.pb import kv_pb2

from .cluster import Cluster, put, wait_until


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def return_previous(key: bytes, value: bytes) -> bytes:
    return kv_pb2.Command(
        put=kv_pb2.PutOp(key=key, value=value, return_previous=True)
    ).SerializeToString()


def test_many_commands_are_one_input_applied_in_order_each_with_its_own_result() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()
        datas = [return_previous(b"same", b"v%d" % i) for i in range(100)]
        futures = leader.propose_many(datas)
        assert len(leader._inbox) == 1, "the whole batch is one inbox item"
        results = await asyncio.gather(*futures)
        indexes = [r.index for r in results]  # type: ignore[attr-defined]
        assert indexes == list(range(indexes[0], indexes[0] + 100)), "consecutive, in order"
        for i, r in enumerate(results):
            assert isinstance(r, kv_pb2.CommandResult)
            if i:
                assert r.had_previous and r.previous == b"v%d" % (i - 1)
        assert c.machines[leader.node.id].get(b"same") == b"v99"
        await c.stop_all()

    run(body)


def test_what_does_not_fit_under_the_pending_limit_fails_alone() -> None:
    async def body() -> None:
        c = Cluster(config=DriverConfig(tick_s=0.002, max_pending_proposals=5))
        c.start_all()
        leader = await c.leader()
        futures = leader.propose_many([put(b"k%d" % i, b"v") for i in range(8)])
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert all(isinstance(o, kv_pb2.CommandResult) for o in outcomes[:5])
        assert all(isinstance(o, Overloaded) for o in outcomes[5:])
        assert c.machines[leader.node.id].get(b"k4") == b"v"
        assert c.machines[leader.node.id].get(b"k5") is None
        await c.stop_all()

    run(body)


def test_a_full_pending_table_refuses_the_whole_call() -> None:
    async def body() -> None:
        c = Cluster(config=DriverConfig(tick_s=0.05, max_pending_proposals=5))
        c.start_all()
        leader = await c.leader(timeout_s=15)
        c.net.isolate(leader.node.id)  # nothing commits: the proposals stay pending
        first = leader.propose_many([put(b"a%d" % i, b"v") for i in range(5)])
        await wait_until(lambda: len(leader._proposals) == 5)
        with pytest.raises(Overloaded):
            leader.propose_many([put(b"b", b"v")])
        c.net.heal()
        await asyncio.gather(*first, return_exceptions=True)
        await c.stop_all()

    run(body)


def test_a_cancelled_future_withdraws_only_its_command() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()
        futures = leader.propose_many([put(b"x%d" % i, b"v") for i in range(3)])
        futures[1].cancel()  # before the driver took the input
        await asyncio.gather(futures[0], futures[2])
        await leader.read_index()
        sm = c.machines[leader.node.id]
        assert (sm.get(b"x0"), sm.get(b"x1"), sm.get(b"x2")) == (b"v", None, b"v")
        await c.stop_all()

    run(body)


def test_a_follower_fails_every_command_naming_the_leader() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()
        follower = next(d for d in c.drivers.values() if d is not leader)
        await wait_until(lambda: follower.leader_id == leader.node.id)
        outcomes = await asyncio.gather(
            *follower.propose_many([put(b"f%d" % i, b"v") for i in range(3)]),
            return_exceptions=True,
        )
        for o in outcomes:
            assert isinstance(o, NotLeaderError) and o.leader_id == leader.node.id
        await c.stop_all()

    run(body)


def test_each_command_counts_against_the_inputs_of_one_iteration() -> None:
    async def body() -> None:
        c = Cluster(config=DriverConfig(tick_s=0.002, max_inputs_per_iteration=8))
        c.start_all()
        leader = await c.leader()
        await leader.read_index()  # settled: nothing else of ours is in flight
        sizes: list[int] = []
        ready = leader.node.ready

        def recording_ready() -> Any:
            rd = ready()
            if rd.entries:
                sizes.append(len(rd.entries))
            return rd

        leader.node.ready = recording_ready  # type: ignore[method-assign]
        first = leader.propose_many([put(b"p%d" % i, b"v") for i in range(8)])
        second = leader.propose_many([put(b"q%d" % i, b"v") for i in range(8)])
        await asyncio.gather(*first, *second)
        assert sizes[:2] == [8, 8], f"entries per Ready: {sizes}"
        await c.stop_all()

    run(body)
