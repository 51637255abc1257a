"""Three real node processes on loopback: replication, linearizable reads, failover, bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raftkv.pb import kv_pb2

from .harness import Cluster, wait_for


def test_put_on_one_node_is_read_linearizably_from_every_node(shared: Cluster) -> None:
    leader = shared.leader()
    follower = next(n for n in shared.nodes if n is not leader)
    # A write through a follower is forwarded; the response names the leader.
    response, call = follower.kv.Put.with_call(
        kv_pb2.PutRequest(key=b"greeting", value=b"hello"), timeout=5
    )
    assert response.index > 0
    metadata = dict(call.trailing_metadata())
    assert metadata["raftkv-leader"] == leader.address
    for node in shared.nodes:
        assert node.get(b"greeting") == b"hello"


def test_cas_delete_and_scan_paging(shared: Cluster) -> None:
    node = shared.nodes[0]
    shared.leader()
    for i in range(25):
        node.put(b"item/%02d" % i, b"v%d" % i)
    node.put(b"other", b"x")
    swapped = node.kv.CompareAndSwap(
        kv_pb2.CompareAndSwapRequest(key=b"item/00", expected=b"nope", value=b"new"), timeout=5
    )
    assert not swapped.swapped and swapped.current == b"v0"
    swapped = node.kv.CompareAndSwap(
        kv_pb2.CompareAndSwapRequest(key=b"item/00", expected=b"v0", value=b"new"), timeout=5
    )
    assert swapped.swapped
    assert node.kv.Delete(kv_pb2.DeleteRequest(key=b"other"), timeout=5).deleted
    assert not node.kv.Delete(kv_pb2.DeleteRequest(key=b"other"), timeout=5).deleted
    keys: list[bytes] = []
    start = b""
    while True:
        page = node.kv.Scan(kv_pb2.ScanRequest(prefix=b"item/", start=start, limit=10), timeout=5)
        keys += [item.key for item in page.items]
        if not page.more:
            break
        start = page.next_start
    assert keys == [b"item/%02d" % i for i in range(25)]


@pytest.mark.parametrize(
    ("method", "request_", "fragment"),
    [
        ("Put", kv_pb2.PutRequest(key=b"", value=b"v"), "key must not be empty"),
        ("Put", kv_pb2.PutRequest(key=b"k" * 4097, value=b"v"), "limit is 4096 bytes"),
        ("Put", kv_pb2.PutRequest(key=b"k", value=b"v" * ((1 << 20) + 1)), "max_value_bytes"),
        ("Get", kv_pb2.GetRequest(key=b"k", consistency=7), "unknown consistency"),  # type: ignore[arg-type]
        ("Scan", kv_pb2.ScanRequest(limit=1_000_000), "max_scan_limit"),
    ],
)
def test_bad_input_gets_invalid_argument_and_the_cluster_keeps_serving(
    shared: Cluster, method: str, request_: object, fragment: str
) -> None:
    node = shared.nodes[1]
    shared.leader()
    with pytest.raises(grpc.RpcError) as info:
        getattr(node.kv, method)(request_, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (info.value.details() or "")
    node.put(b"still", b"serving")
    assert node.get(b"still") == b"serving"


def test_health_serves_once_a_leader_is_known(shared: Cluster) -> None:
    shared.leader()
    for node in shared.nodes:
        stub = health_pb2_grpc.HealthStub(node.channel)  # type: ignore[no-untyped-call]

        def serving(stub: health_pb2_grpc.HealthStub = stub) -> bool:
            r = stub.Check(health_pb2.HealthCheckRequest(service="raftkv.v1.KV"), timeout=1)
            return bool(r.status == health_pb2.HealthCheckResponse.SERVING)

        wait_for(serving, 10, "SERVING")


def test_kill_leader_then_writes_resume_within_two_seconds_and_it_catches_up(
    cluster: Cluster,
) -> None:
    leader = cluster.leader()
    survivor = next(n for n in cluster.nodes if n is not leader)
    acknowledged = []
    for i in range(50):
        survivor.put(b"k%d" % i, b"v%d" % i)
        acknowledged.append(i)
    leader.kill()
    killed_at = time.monotonic()

    def write() -> bool:
        try:
            survivor.put(b"after", b"kill", timeout=0.5)
        except grpc.RpcError:
            return False
        return True

    wait_for(write, 10, "a write after the leader's kill")
    gap = time.monotonic() - killed_at
    assert gap < 2.0, f"writes resumed only after {gap:.2f}s"
    leader.start()
    wait_for(lambda: leader.get(b"after", stale=True) == b"kill", 15, "the restarted node")
    for i in acknowledged:
        assert leader.get(b"k%d" % i) == b"v%d" % i


def test_sigterm_stops_a_node_cleanly_with_exit_code_zero(cluster: Cluster) -> None:
    leader = cluster.leader()
    leader.put(b"a", b"1")
    assert leader.terminate() == 0
    new = cluster.leader()
    assert new is not leader
    assert new.get(b"a") == b"1"


def test_concurrent_writes_through_every_node(shared: Cluster) -> None:
    shared.leader()

    def write(i: int) -> int:
        node = shared.nodes[i % 3]
        return node.put(b"c%d" % i, b"%d" % i, timeout=10).index

    with ThreadPoolExecutor(32) as pool:
        indexes = list(pool.map(write, range(600)))
    assert len(set(indexes)) == 600
    assert shared.nodes[2].get(b"c599") == b"599"


def test_peer_messages_from_another_cluster_or_unknown_node_are_refused(shared: Cluster) -> None:
    from raftkv.pb import raft_pb2, raft_pb2_grpc

    node = shared.nodes[0]
    status = node.status()
    stub = raft_pb2_grpc.RaftStub(node.channel)  # type: ignore[no-untyped-call]
    cases = [
        (
            raft_pb2.PeerHeader(cluster_id="another", from_id=2, to_id=1, term=99),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (
            raft_pb2.PeerHeader(cluster_id=status.cluster_id, from_id=42, to_id=1, term=99),
            grpc.StatusCode.PERMISSION_DENIED,
        ),
    ]
    for header, code in cases:
        with pytest.raises(grpc.RpcError) as info:
            stub.RequestVote(raft_pb2.VoteRequest(header=header), timeout=5)
        assert info.value.code() == code
    assert node.status().term == status.term  # nothing reached the core


def test_a_conflicting_cluster_flag_on_an_existing_directory_is_refused(cluster: Cluster) -> None:
    from .harness import env

    node = cluster.nodes[2]
    cluster.wait_ready()
    node.terminate()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftkv.cli.server_main",
            "serve",
            "--id",
            "3",
            "--listen",
            node.address,
            "--cluster",
            f"3={node.address}",
            "--data-dir",
            str(node.data_dir),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert result.returncode == 1, result.stderr  # EXIT_STARTUP_FAILED
    assert "--cluster does not name nodes [1, 2]" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_retried_write_with_the_same_session_is_applied_once(shared: Cluster) -> None:
    """The response of the first attempt is 'lost' (ignored); the retry, through another node,
    gets the original answer and the command is not applied again (observed with cas)."""
    leader = shared.leader()
    follower = next(n for n in shared.nodes if n is not leader)
    leader.put(b"counter", b"0")
    session = kv_pb2.Session(client_id=0xC0FFEE, sequence=1)
    bump = kv_pb2.CompareAndSwapRequest(key=b"counter", expected=b"0", value=b"1", session=session)
    first = leader.kv.CompareAndSwap(bump, timeout=5)
    retry = follower.kv.CompareAndSwap(bump, timeout=5)
    assert first.swapped and retry.swapped and retry.index == first.index
    assert follower.get(b"counter") == b"1"
    session.sequence = 2
    again = kv_pb2.CompareAndSwapRequest(key=b"counter", expected=b"1", value=b"2", session=session)
    assert follower.kv.CompareAndSwap(again, timeout=5).swapped
    assert leader.get(b"counter") == b"2"


def test_batch_on_a_follower_gives_each_operation_its_own_result(shared: Cluster) -> None:
    leader = shared.leader()
    follower = next(n for n in shared.nodes if n is not leader)
    ops = [
        kv_pb2.BatchOp(put=kv_pb2.PutRequest(key=b"batch/a", value=b"1")),
        kv_pb2.BatchOp(put=kv_pb2.PutRequest(key=b"", value=b"bad")),
        kv_pb2.BatchOp(
            compare_and_swap=kv_pb2.CompareAndSwapRequest(
                key=b"batch/b", expect_absent=True, value=b"2"
            )
        ),
        kv_pb2.BatchOp(get=kv_pb2.GetRequest(key=b"batch/none")),
    ]
    results = follower.kv.Batch(kv_pb2.BatchRequest(ops=ops), timeout=10).results
    assert [r.WhichOneof("result") for r in results] == ["put", "error", "compare_and_swap", "get"]
    assert results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "must not be empty" in results[1].error.message
    assert results[2].compare_and_swap.swapped
    assert not results[3].get.found
    assert leader.get(b"batch/a") == b"1" and leader.get(b"batch/b") == b"2"
