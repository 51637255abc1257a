"""Bearer tokens without TLS: followers forward with the caller's token (no peer certificates to
vouch for them), admin calls forwarded to the leader keep the caller's role."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from raftkv.client import Client
from raftkv.errors import RaftKVError
from raftkv.pb import kv_pb2
from tests.integration.harness import Cluster, Node

from .conftest import ADMIN_TOKEN, USER_TOKEN

pytestmark = pytest.mark.timeout(120)


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class TokenCluster(Cluster):
    def status_of(self, node: Node) -> kv_pb2.StatusResponse:
        r: kv_pb2.StatusResponse = node.admin.Status(
            kv_pb2.StatusRequest(), timeout=1, metadata=_md(USER_TOKEN)
        )
        return r


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenCluster]:
    root = tmp_path_factory.mktemp("tokens")
    tokens = root / "tokens"
    tokens.write_text(f"{ADMIN_TOKEN} admin\n{USER_TOKEN} user\n")
    c = TokenCluster(root, 3, ("--auth-token-file", str(tokens)))
    c.start()
    try:
        yield c
    finally:
        c.stop()


def _leader_and_follower(c: TokenCluster) -> tuple[Node, Node]:
    from tests.integration.harness import wait_for

    def find() -> tuple[Node, Node] | None:
        statuses = {n.id: c.status_of(n) for n in c.nodes}
        leaders = [n for n in c.nodes if statuses[n.id].role == "leader"]
        if len(leaders) != 1 or not all(s.leader_id for s in statuses.values()):
            return None
        return leaders[0], next(n for n in c.nodes if n is not leaders[0])

    return wait_for(find, 20, "a leader")


def test_forwarded_writes_and_admin_calls_keep_the_callers_token(cluster: TokenCluster) -> None:
    leader, follower = _leader_and_follower(cluster)
    follower.kv.Put(kv_pb2.PutRequest(key=b"f", value=b"1"), timeout=5, metadata=_md(USER_TOKEN))
    got = leader.kv.Get(kv_pb2.GetRequest(key=b"f"), timeout=5, metadata=_md(USER_TOKEN))
    assert got.value == b"1"
    with pytest.raises(grpc.RpcError) as info:
        follower.admin.TransferLeader(
            kv_pb2.TransferLeaderRequest(target_id=follower.id), timeout=5, metadata=_md(USER_TOKEN)
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # An admin asking a follower: forwarded to the leader with the admin's token.
    reply = follower.admin.TransferLeader(
        kv_pb2.TransferLeaderRequest(target_id=follower.id), timeout=10, metadata=_md(ADMIN_TOKEN)
    )
    assert reply.leader_id == follower.id


def test_the_client_library_with_a_token(cluster: TokenCluster) -> None:
    endpoints = [n.address for n in cluster.nodes]
    with Client(endpoints, timeout=10, token=USER_TOKEN) as client:
        client.put("lib", "v")
        assert client.get("lib") == b"v"
    with Client(endpoints, timeout=2, token="not-a-valid-token-000") as client:
        with pytest.raises(RaftKVError) as info:
            client.get("lib")
        assert "not valid" in str(info.value)


def test_health_needs_no_token(cluster: TokenCluster, tmp_path: Path) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(cluster.nodes[0].channel)
    stub.Check(health_pb2.HealthCheckRequest(), timeout=5)


def test_join_sends_the_admin_token_from_its_file(tmp_path: Path) -> None:
    """A cluster that checks tokens refuses --join without an admin token, saying which flag
    to pass; with --join-token-file the node joins and is promoted."""
    from tests.integration.harness import env, wait_for
    from tests.integration.test_membership import Joiner

    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ADMIN_TOKEN} admin\n{USER_TOKEN} user\n")
    admin_file, user_file = tmp_path / "admin-token", tmp_path / "user-token"
    admin_file.write_text(f"{ADMIN_TOKEN}\n")
    user_file.write_text(f"# a comment line first\n{USER_TOKEN}\n")
    (tmp_path / "cluster").mkdir()
    c = TokenCluster(tmp_path / "cluster", 3, ("--auth-token-file", str(tokens)))
    joiners: list[Joiner] = []

    def start_joiner(node_id: int, *extra: str) -> Joiner:
        joiner = Joiner(c, node_id)
        joiner.extra = extra
        joiners.append(joiner)
        joiner.start()
        return joiner

    def refusal(node_id: int, *extra: str) -> str:
        joiner = start_joiner(node_id, *extra)
        assert joiner.proc is not None
        assert joiner.proc.wait(60) != 0
        joiner.proc = None
        return joiner.log_path.read_text()

    # Misuse is a usage error before anything starts.
    empty = tmp_path / "empty-token"
    empty.write_text("# nothing\n")
    serve = [sys.executable, "-m", "raftkv.cli.server_main", "serve", "--id", "7"]
    serve += ["--listen", "127.0.0.1:1", "--data-dir", str(tmp_path / "x")]
    for flags, message in [
        (["--cluster", "7=127.0.0.1:1", "--join-token-file", str(admin_file)], "only used with"),
        (["--join", "127.0.0.1:1", "--join-token-file", str(empty)], "no token in it"),
    ]:
        bad = subprocess.run(
            [*serve, *flags], capture_output=True, text=True, env=env(), timeout=30, check=False
        )
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr

    c.start()
    try:
        _leader_and_follower(c)
        assert "pass an admin token with --join-token-file" in refusal(5)
        assert "must hold a token with the admin role" in refusal(
            6, "--join-token-file", str(user_file)
        )
        start_joiner(4, "--join-token-file", str(admin_file))

        def voters() -> set[int]:
            r = c.nodes[0].admin.MemberList(
                kv_pb2.MemberListRequest(), timeout=2, metadata=_md(USER_TOKEN)
            )
            return {m.id for m in r.members if not m.learner}

        assert wait_for(lambda: voters() == {1, 2, 3, 4}, 60, "node 4 joined and promoted")
    finally:
        for joiner in joiners:
            if joiner.proc is not None:
                joiner.kill()
        c.stop()
