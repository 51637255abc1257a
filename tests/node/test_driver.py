"""The driver over the in-memory transport: replication, reads, failover, batching, snapshots."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from raftkv.core.ready import Role
from raftkv.node.config import DriverConfig
from raftkv.node.errors import NoLeader, NotLeaderError
from raftkv.pb import kv_pb2

from .cluster import Cluster, cas, put, wait_until


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def test_put_replicates_and_reads_are_linearizable_everywhere() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()
        outcome = await leader.propose(put(b"a", b"1"))
        assert isinstance(outcome, kv_pb2.CommandResult) and outcome.ok
        for d in c.drivers.values():
            index = await d.read_index()
            assert index >= outcome.index
            assert d.state_machine.get(b"a") == b"1"
        await c.stop_all()

    run(body)


def test_follower_refuses_proposals_naming_the_leader() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()
        follower = next(d for d in c.drivers.values() if d is not leader)
        await wait_until(lambda: follower.leader_id == leader.node.id)
        with pytest.raises(NotLeaderError) as info:
            await follower.propose(put(b"a", b"1"))
        assert info.value.leader_id == leader.node.id
        await c.stop_all()

    run(body)


def test_concurrent_proposals_share_fsyncs() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()
        saves = 0
        store = c.stores[leader.node.id]
        original = store.save

        def counting_save(**kw: Any) -> None:
            nonlocal saves
            saves += 1
            original(**kw)

        store.save = counting_save  # type: ignore[method-assign]
        results = await asyncio.gather(*(leader.propose(put(b"k%d" % i, b"v")) for i in range(500)))
        assert len({r.index for r in results}) == 500  # type: ignore[attr-defined]
        assert saves < 100, f"{saves} fsyncs for 500 proposals: batching is broken"
        await c.stop_all()

    run(body)


def test_leader_crash_elects_a_new_leader_with_every_acknowledged_write() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()
        for i in range(20):
            await leader.propose(put(b"k%d" % i, b"v%d" % i))
        old = leader.node.id
        await c.crash(old)
        new = await c.leader()
        assert new.node.id != old
        await new.propose(put(b"after", b"x"))
        await new.read_index()
        assert all(new.state_machine.get(b"k%d" % i) == b"v%d" % i for i in range(20))
        c.start(old)  # restarts from its store and state machine, then catches up
        await wait_until(lambda: c.machines[old].get(b"after") == b"x")
        await c.stop_all()

    run(body)


def test_reads_without_a_leader_fail_definitely() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()
        for d in list(c.drivers.values()):
            if d is not leader:
                await c.crash(d.node.id)
        # CheckQuorum: the lone leader steps down within an election timeout.
        await wait_until(lambda: leader.node.role != Role.LEADER)
        with pytest.raises(NoLeader):
            await leader.read_index()
        await c.stop_all()

    run(body)


def test_cas_outcome_comes_back_to_the_proposer() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()
        await leader.propose(put(b"x", b"1"))
        failed = await leader.propose(cas(b"x", b"2", b"3"))
        assert isinstance(failed, kv_pb2.CommandResult)
        assert not failed.ok and failed.previous == b"1"
        swapped = await leader.propose(cas(b"x", b"1", b"3"))
        assert isinstance(swapped, kv_pb2.CommandResult) and swapped.ok
        await c.stop_all()

    run(body)


def test_session_makes_a_retried_command_apply_once() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()
        await leader.propose(put(b"n", b"0"))
        first = await leader.propose(put(b"n", b"1", client_id=7, seq=1))
        await leader.propose(put(b"n", b"2"))
        retried = await leader.propose(put(b"n", b"1", client_id=7, seq=1))
        assert retried == first
        assert leader.state_machine.get(b"n") == b"2"
        await c.stop_all()

    run(body)


def test_lagging_follower_catches_up_through_a_snapshot() -> None:
    async def body() -> None:
        c = Cluster(config=DriverConfig(tick_s=0.002, snapshot_threshold=50, snapshot_trailing=5))
        c.start_all()
        leader = await c.leader()
        lagging = next(i for i in c.ids if i != leader.node.id)
        await c.crash(lagging)
        for i in range(300):
            await leader.propose(put(b"k%d" % i, b"v%d" % i))
        assert c.stores[leader.node.id].first_index() > 100  # compacted
        c.start(lagging)
        await wait_until(lambda: c.machines[lagging].get(b"k299") == b"v299", 20)
        assert c.machines[lagging].get(b"k0") == b"v0"
        await c.stop_all()

    run(body)


def test_a_failing_state_machine_kills_the_driver_visibly() -> None:
    async def body() -> None:
        c = Cluster()
        c.start_all()
        leader = await c.leader()

        def broken(entries: object) -> list[object]:
            raise OSError("disk on fire")

        leader.state_machine.apply = broken  # type: ignore[method-assign]
        proposal = asyncio.ensure_future(leader.propose(put(b"a", b"1")))
        failure = await asyncio.wait_for(leader.wait_failed(), 5)
        assert isinstance(failure, OSError)
        await c.stop_all()
        with pytest.raises(Exception):  # noqa: B017 - unknown outcome or stopped: either is right
            await proposal

    run(body)


def test_a_lost_read_index_request_fails_fast_and_retries_succeed() -> None:
    async def body() -> None:
        from raftkv.core.messages import ReadIndexRequest

        c = Cluster(config=DriverConfig(tick_s=0.002, read_index_timeout_s=0.1))
        c.start_all()
        leader = await c.leader()
        follower = next(d for d in c.drivers.values() if d is not leader)
        await wait_until(lambda: follower.leader_id == leader.node.id)
        route = c.net.route
        c.net.route = lambda src, ms: route(  # type: ignore[method-assign]
            src, [m for m in ms if not isinstance(m, ReadIndexRequest)]
        )
        with pytest.raises(NoLeader, match="in time"):
            await asyncio.wait_for(follower.read_index(), 2)
        c.net.route = route  # type: ignore[method-assign]
        assert await follower.read_index() >= 1
        await c.stop_all()

    run(body)


@pytest.mark.parametrize("on_loop", [True, False], ids=["on-loop", "storage-thread"])
def test_log_writes_and_apply_run_where_configured(on_loop: bool) -> None:
    """The fsync and apply run on the event loop's thread (no hand-off per write) when the
    config says so (persist_on_loop_after_idle_s=0: every write counts as arriving after an
    idle spell), else on the driver's storage thread. Both replicate alike."""

    async def body() -> None:
        config = DriverConfig(
            tick_s=0.002,
            persist_on_loop_after_idle_s=0.0 if on_loop else -1.0,
            apply_on_loop=on_loop,
        )
        c = Cluster(config=config)
        c.start_all()
        leader = await c.leader()
        loop_thread = threading.current_thread().name
        threads: dict[str, set[str]] = {"save": set(), "apply": set()}
        store, state = c.stores[leader.node.id], leader.state_machine
        save, apply = store.save, state.apply

        def recording_save(**kw: Any) -> None:
            threads["save"].add(threading.current_thread().name)
            save(**kw)

        def recording_apply(entries: Any) -> Any:
            threads["apply"].add(threading.current_thread().name)
            return apply(entries)

        store.save = recording_save  # type: ignore[method-assign]
        state.apply = recording_apply  # type: ignore[method-assign]
        results = await asyncio.gather(*(leader.propose(put(b"k%d" % i, b"v")) for i in range(50)))
        assert all(r.ok for r in results)  # type: ignore[attr-defined]
        expected = {loop_thread} if on_loop else {f"raftkv-io-{leader.node.id}_0"}
        assert threads["save"] == expected
        assert threads["apply"] == expected
        await c.stop_all()

    run(body)
