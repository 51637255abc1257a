"""Membership changes with real processes: grow, shrink, replace, transfer, and the refusals.

A writer thread writes continuously through raftkv.client while the cluster changes; every write
it saw acknowledged must be readable at the end (retries inside the client are fine, errors that
reach the writer are not). Everything waits by polling with deadlines, never by sleeping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from raftkv.cli.client_main import main as cli_main
from raftkv.client import Client, MemberList
from raftkv.errors import RaftKVError
from raftkv.pb import kv_pb2

from .harness import Cluster, Node, env, free_ports, wait_for

SNAPSHOT_ARGS = ("--snapshot-threshold", "100")


class Joiner(Node):
    """A node started with ``--join`` (an id beyond the bootstrap members, its own port)."""

    def __init__(self, cluster: Cluster, node_id: int, port: int | None = None) -> None:
        if port is None:
            port = free_ports(1)[0]
        while len(cluster.ports) < node_id:
            cluster.ports.append(0)
        cluster.ports[node_id - 1] = port
        super().__init__(cluster, node_id)
        self.extra: tuple[str, ...] = ()

    def membership_args(self) -> list[str]:
        seeds = ",".join(n.address for n in self.cluster.nodes if n.proc is not None)
        return ["--join", seeds, *self.extra]


class Writer:
    """Writes k0, k1, ... until stopped; remembers what was acknowledged and what failed."""

    def __init__(self, addresses: list[str]) -> None:
        self.client = Client(addresses, timeout=20.0)
        self.acked: dict[bytes, bytes] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            key, value = b"w%06d" % i, b"v%d" % i
            try:
                self.client.put(key, value)
                self.acked[key] = value
            except RaftKVError as exc:
                self.errors.append(f"{key!r}: {exc}")
            i += 1

    def wait_acked(self, n: int) -> None:
        wait_for(lambda: len(self.acked) >= n, 30, f"{n} acknowledged writes")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()


def settled(client: Client, voters: set[int], learners: frozenset[int] = frozenset()) -> MemberList:
    def check() -> MemberList | None:
        try:
            m = client.member_list(timeout=2)
        except RaftKVError:
            return None
        ok = set(m.voters) == voters and set(m.learners) == learners and not m.outgoing
        return m if ok else None

    return wait_for(check, 30, f"voters {sorted(voters)} learners {sorted(learners)}")


def check_all_readable(client: Client, acked: dict[bytes, bytes]) -> None:
    assert acked, "the writer never got a write through"
    keys = sorted(acked)
    for key in keys[:: max(1, len(keys) // 200)] + keys[-20:]:
        assert client.get(key) == acked[key], key


def stale_get(node: Node, key: bytes) -> bytes | None:
    return node.get(key, stale=True)


@pytest.fixture
def snap_cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, extra_args=SNAPSHOT_ARGS)
    c.start()
    try:
        c.wait_ready()
        yield c
    finally:
        c.stop()


def test_grow_3_to_5_under_load_then_remove_two(snap_cluster: Cluster) -> None:
    c = snap_cluster
    addresses = [n.address for n in c.nodes]
    with Client(addresses, timeout=20.0) as admin, Writer(addresses) as writer:
        writer.wait_acked(300)  # past the snapshot threshold: joiners catch up by snapshot
        joiners = [Joiner(c, 4), Joiner(c, 5)]
        voters = {1, 2, 3}
        for j in joiners:
            j.start()
            c.nodes.append(j)
            voters.add(j.id)
            settled(admin, voters)  # joined as a learner, then auto-promoted
        n = len(writer.acked)
        writer.wait_acked(n + 100)
        # The new nodes hold the data: their applied state includes an early write.
        for j in joiners:

            def has_data(j: Node = j) -> bool:
                return stale_get(j, b"w000000") == b"v0"

            assert wait_for(has_data, 20, "data on joiner")
            assert j.status().first_index > 1, "the joiner should have started from a snapshot"

        leader = c.leader().id
        removed = [leader, next(i for i in (1, 2, 3) if i != leader)]
        for node_id in removed:
            admin.member_remove(node_id)
        remaining = {1, 2, 3, 4, 5} - set(removed)
        settled(admin, remaining)
        n = len(writer.acked)
        writer.wait_acked(n + 100)
        writer.stop()
        assert not writer.errors, writer.errors[:5]
        for node_id in removed:
            c.node(node_id).terminate()
        check_all_readable(admin, writer.acked)
        assert c.leader().id in remaining


def test_replace_a_node_whose_data_was_wiped(snap_cluster: Cluster) -> None:
    c = snap_cluster
    addresses = [n.address for n in c.nodes]
    with Client(addresses, timeout=20.0) as admin, Writer(addresses) as writer:
        writer.wait_acked(200)
        victim = next(n for n in c.nodes if n.id != c.leader().id)
        victim.kill()
        shutil.rmtree(victim.data_dir)
        admin.member_remove(victim.id)
        settled(admin, {1, 2, 3} - {victim.id})
        # Same id and address, empty data directory: it joins afresh and is promoted.
        fresh = Joiner(c, victim.id, port=victim.port)
        c.nodes[victim.id - 1] = fresh
        fresh.start()
        settled(admin, {1, 2, 3})
        n = len(writer.acked)
        writer.wait_acked(n + 50)
        writer.stop()
        assert not writer.errors, writer.errors[:5]
        check_all_readable(admin, writer.acked)
        last = max(writer.acked)
        assert wait_for(lambda: stale_get(fresh, last) == writer.acked[last], 20, "caught up")
        # A joined node restarts with neither --join nor --cluster: its log knows the members.
        fresh.terminate()
        restarted = subprocess.Popen(
            [sys.executable, "-m", "raftkv.cli.server_main", "serve", "--id", str(fresh.id),
             "--listen", fresh.address, "--data-dir", str(fresh.data_dir), *SNAPSHOT_ARGS],
            stdout=fresh.log_path.open("ab"), stderr=subprocess.STDOUT, env=env(),
        )  # fmt: skip
        fresh.proc = restarted
        admin.put(b"after-restart", b"1")
        assert wait_for(lambda: stale_get(fresh, b"after-restart") == b"1", 20, "restarted node")


def test_transfer_leadership_to_each_node_under_load(cluster: Cluster) -> None:
    addresses = [n.address for n in cluster.nodes]
    with Client(addresses, timeout=20.0) as admin, Writer(addresses) as writer:
        writer.wait_acked(50)
        for node in [*cluster.nodes, cluster.nodes[0]]:
            assert admin.transfer_leader(node.id) == node.id
            assert cluster.leader().id == node.id
            n = len(writer.acked)
            writer.wait_acked(n + 20)
        writer.stop()
        assert not writer.errors, writer.errors[:5]
        check_all_readable(admin, writer.acked)


def _code(call: grpc.RpcError) -> grpc.StatusCode:
    return call.code()


def test_refusals(cluster: Cluster) -> None:
    leader = cluster.wait_ready()
    follower = next(n for n in cluster.nodes if n is not leader)
    admin = follower.admin  # refusals come back through the follower's forwarding too

    def refused(method: str, request: object) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as info:
            getattr(admin, method)(request, timeout=10)
        return _code(info.value), info.value.details()

    code, text = refused("MemberPromote", kv_pb2.MemberPromoteRequest(id=9))
    assert code == grpc.StatusCode.NOT_FOUND and "not a member" in text
    code, text = refused("MemberRemove", kv_pb2.MemberRemoveRequest(id=9))
    assert code == grpc.StatusCode.NOT_FOUND
    code, text = refused("MemberAdd", kv_pb2.MemberAddRequest(id=2, address="127.0.0.1:1"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "already a member" in text
    code, text = refused("MemberAdd", kv_pb2.MemberAddRequest(id=7, address="nowhere"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, text = refused("MemberPromote", kv_pb2.MemberPromoteRequest(id=leader.id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "already is a voter" in text

    # Two changes at once: the second is refused while the first runs.
    port = free_ports(2)
    first = leader.admin.MemberAdd.future(
        kv_pb2.MemberAddRequest(id=7, address=f"127.0.0.1:{port[0]}", learner=True), timeout=10
    )
    second = leader.admin.MemberAdd.future(
        kv_pb2.MemberAddRequest(id=8, address=f"127.0.0.1:{port[1]}", learner=True), timeout=10
    )
    first.result()
    with pytest.raises(grpc.RpcError) as info:
        second.result()
    assert _code(info.value) == grpc.StatusCode.FAILED_PRECONDITION
    assert "in progress" in info.value.details()
    leader.admin.MemberRemove(kv_pb2.MemberRemoveRequest(id=7), timeout=10)

    # With one of three voters down, adding a voter that is not running would lose quorum.
    down = next(n for n in cluster.nodes if n is not leader and n is not follower)
    down.kill()

    def seen_down() -> bool:
        answer = leader.admin.MemberList(kv_pb2.MemberListRequest(), timeout=5)
        return down.id in answer.unreachable

    wait_for(seen_down, 10, f"the leader noticing node {down.id} is down")

    def refused_for_quorum() -> str | None:
        try:
            admin.MemberAdd(kv_pb2.MemberAddRequest(id=9, address="127.0.0.1:2"), timeout=10)
        except grpc.RpcError as exc:
            if _code(exc) == grpc.StatusCode.FAILED_PRECONDITION:
                return str(exc.details())
        return None

    text = wait_for(refused_for_quorum, 10, "a quorum refusal")
    assert "lose quorum" in text and str(down.id) in text


def test_cli_member_commands(shared: Cluster) -> None:
    endpoints = ",".join(n.address for n in shared.nodes)
    port = free_ports(1)[0]

    def cli(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli_main, ["--endpoints", endpoints, "--timeout", "10", *args])
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = cli("member", "list")
    assert code == 0 and "(leader)" in out and out.count("voter") == 3, out
    code, out, _ = cli("member", "add", "6", f"127.0.0.1:{port}", "--learner")
    assert code == 0 and "added node 6 (learner)" in out and f"6  127.0.0.1:{port}  learner" in out
    code, out, _ = cli("-w", "json", "member", "list")
    assert (
        code == 0
        and {"id": 6, "address": f"127.0.0.1:{port}", "learner": True}
        in (json.loads(out)["members"])
    )
    code, _, err = cli("member", "add", "6", f"127.0.0.1:{port}")
    assert code != 0 and "already a member" in err and len(err.splitlines()) == 1
    # Explicit promotion (three of four voters are up: quorum holds in both halves).
    code, out, _ = cli("member", "promote", "6")
    assert code == 0 and "promoted node 6" in out and f"6  127.0.0.1:{port}  voter" in out
    code, out, _ = cli("member", "remove", "6")
    assert code == 0 and "removed node 6" in out and "learner" not in out
    code, _, err = cli("member", "promote", "6")
    assert code != 0 and "not a member" in err
    leader = shared.leader()
    target = next(n for n in shared.nodes if n is not leader)
    code, out, _ = cli("leader", "transfer", str(target.id))
    assert code == 0 and f"leader is now node {target.id}" in out


def test_last_voter_and_flag_misuse(tmp_path: Path) -> None:
    c = Cluster(tmp_path, n=1)
    c.start()
    try:
        node = c.wait_ready()
        with pytest.raises(grpc.RpcError) as info:
            node.admin.MemberRemove(kv_pb2.MemberRemoveRequest(id=1), timeout=10)
        assert _code(info.value) == grpc.StatusCode.FAILED_PRECONDITION
        assert "last voter" in info.value.details()
        # --join on a bootstrapped data directory, and --join with --cluster, are refused.
        base = [sys.executable, "-m", "raftkv.cli.server_main", "serve", "--id", "2"]
        bad = subprocess.run(
            [
                *base,
                "--listen",
                "127.0.0.1:1",
                "--join",
                node.address,
                "--data-dir",
                str(node.data_dir),
            ],
            check=False,
            capture_output=True,
            env=env(),
            timeout=30,
        )
        assert bad.returncode == 2 and b"needs an empty --data-dir" in bad.stderr
        both = subprocess.run(
            [
                *base,
                "--listen",
                "127.0.0.1:1",
                "--join",
                node.address,
                "--cluster",
                "2=127.0.0.1:1",
                "--data-dir",
                str(tmp_path / "x"),
            ],
            check=False,
            capture_output=True,
            env=env(),
            timeout=30,
        )
        assert both.returncode == 2 and b"exclude each other" in both.stderr
    finally:
        c.stop()
