"""Real nodes with TLS, client certificates, peer mTLS and tokens: who gets in, who does not.

Every refusal is checked for its status code and message, and the cluster keeps serving
throughout (the last test reads back everything written while intruders knocked).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from raftkv.client import Client, ClientTls
from raftkv.errors import Unavailable
from raftkv.pb import kv_pb2, kv_pb2_grpc, raft_pb2, raft_pb2_grpc
from tests.integration.harness import ROOT, env

from .conftest import ADMIN_TOKEN, USER_TOKEN, SecureCluster, client_credentials, read

pytestmark = pytest.mark.timeout(120)


def _token(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from raftkv.cli.client_main import main; main()", *args],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def _follower(secure: SecureCluster) -> str:
    leader = secure.leader()
    return next(n.address for n in secure.nodes if n is not leader)


def test_the_cluster_serves_over_mutual_tls_and_forwards(secure: SecureCluster) -> None:
    leader = secure.wait_ready()
    follower = next(n for n in secure.nodes if n is not leader)
    follower.put(b"via-follower", b"1")  # forwarded to the leader over mTLS, token carried
    assert leader.get(b"via-follower") == b"1"
    assert follower.get(b"via-follower") == b"1"  # a follower's ReadIndex over the peer link


def test_client_library_with_tls_and_token(secure: SecureCluster, certs: Path) -> None:
    tls = ClientTls(cacert=certs / "ca.crt", cert=certs / "client.crt", key=certs / "client.key")
    endpoints = [n.address for n in secure.nodes]
    with Client(endpoints, timeout=10, tls=tls, token=USER_TOKEN) as client:
        client.put("lib", "ok")
        assert client.get("lib") == b"ok"


def test_a_plaintext_client_fails_with_a_clear_message(secure: SecureCluster) -> None:
    result = _cli("--endpoints", secure.nodes[0].address, "--timeout", "1", "get", "k")
    assert result.returncode == 3, result.stderr
    assert "pass --cacert" in result.stderr
    with (
        Client([secure.nodes[0].address], timeout=1) as client,
        pytest.raises(Unavailable),
    ):
        client.get("k")


def test_the_cli_with_tls_and_a_token_file(
    secure: SecureCluster, certs: Path, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(USER_TOKEN + "\n")
    flags = [
        "--endpoints", _follower(secure),
        "--cacert", str(certs / "ca.crt"),
        "--cert", str(certs / "client.crt"),
        "--key", str(certs / "client.key"),
    ]  # fmt: skip
    no_token = _cli(*flags, "put", "cli", "x")
    assert no_token.returncode != 0
    assert "bearer token" in no_token.stderr
    result = _cli(*flags, "--token-file", str(token_file), "put", "cli", "x")
    assert result.returncode == 0, result.stderr
    result = _cli(*flags, "--token-file", str(token_file), "get", "cli")
    assert result.stdout.strip() == "x"
    no_cert = _cli(
        "--endpoints", _follower(secure), "--timeout", "1", "--cacert", str(certs / "ca.crt"),
        "--token-file", str(token_file), "get", "cli",
    )  # fmt: skip
    assert no_cert.returncode == 3
    assert "client certificate" in no_cert.stderr


def _stub(secure: SecureCluster, creds: grpc.ChannelCredentials) -> grpc.Channel:
    return grpc.secure_channel(secure.nodes[0].address, creds)


def _vote(cluster_id: str) -> raft_pb2.VoteRequest:
    header = raft_pb2.PeerHeader(cluster_id=cluster_id, from_id=2, to_id=1, term=10**6)
    return raft_pb2.VoteRequest(header=header, last_log_index=10**9, last_log_term=10**6)


def test_peers_without_a_peer_certificate_are_refused(secure: SecureCluster, certs: Path) -> None:
    status = secure.nodes[0].status()
    request = _vote(status.cluster_id)
    cases = {
        "no client certificate": client_credentials(certs, cert=None),
        "a certificate from another CA": grpc.ssl_channel_credentials(
            read(certs, "ca.crt"),
            read(certs / "other", "node.key"),
            read(certs / "other", "node.crt"),
        ),
    }
    for what, creds in cases.items():
        with _stub(secure, creds) as channel, pytest.raises(grpc.RpcError) as info:
            raft_pb2_grpc.RaftStub(channel).RequestVote(request, timeout=5)  # type: ignore[no-untyped-call]
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, what  # the handshake fails
    # A client certificate gets through TLS but not into the Raft service.
    with _stub(secure, client_credentials(certs)) as channel:
        with pytest.raises(grpc.RpcError) as info:
            raft_pb2_grpc.RaftStub(channel).RequestVote(request, timeout=5)  # type: ignore[no-untyped-call]
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "peer-trusted-ca-file" in (info.value.details() or "")
        with pytest.raises(grpc.RpcError) as info:
            raft_pb2_grpc.RaftStub(channel).Stream(  # type: ignore[no-untyped-call]
                iter([raft_pb2.PeerBatch()]), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # A real peer certificate passes, and then the cluster-id check still applies.
    with _stub(secure, client_credentials(certs, cert="node")) as channel:
        with pytest.raises(grpc.RpcError) as info:
            raft_pb2_grpc.RaftStub(channel).RequestVote(_vote("another"), timeout=5)  # type: ignore[no-untyped-call]
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    after = secure.nodes[0].status()
    assert after.term == status.term  # nothing reached the core


def test_tokens_and_roles(secure: SecureCluster, certs: Path) -> None:
    with _stub(secure, client_credentials(certs)) as channel:
        kv = kv_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
        admin = kv_pb2_grpc.ClusterStub(channel)  # type: ignore[no-untyped-call]
        put = kv_pb2.PutRequest(key=b"t", value=b"v")
        for metadata, message in (
            ((), "needs a bearer token"),
            (_token("wrong-token-0123456789"), "not valid"),
            ((("authorization", "Basic abc"),), "not valid"),
        ):
            with pytest.raises(grpc.RpcError) as info:
                kv.Put(put, timeout=5, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert message in (info.value.details() or "")
        kv.Put(put, timeout=5, metadata=_token(USER_TOKEN))
        admin.Status(kv_pb2.StatusRequest(), timeout=5, metadata=_token(USER_TOKEN))
        for call in (
            lambda md: admin.TransferLeader(
                kv_pb2.TransferLeaderRequest(target_id=0), timeout=5, metadata=md
            ),
            lambda md: next(iter(admin.Snapshot(kv_pb2.BackupRequest(), timeout=5, metadata=md))),
        ):
            with pytest.raises(grpc.RpcError) as info:
                call(_token(USER_TOKEN))
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "admin role" in (info.value.details() or "")
        first = next(
            iter(admin.Snapshot(kv_pb2.BackupRequest(), timeout=10, metadata=_token(ADMIN_TOKEN)))
        )
        assert first.meta.index > 0


def test_tokens_never_appear_in_logs(secure: SecureCluster) -> None:
    logs = secure.logs()
    for token in (ADMIN_TOKEN, USER_TOKEN, "wrong-token-0123456789"):
        assert token not in logs


def test_the_cluster_kept_serving(secure: SecureCluster) -> None:
    secure.wait_ready()
    for node in secure.nodes:
        assert node.get(b"via-follower") == b"1"
        assert node.get(b"t") == b"v"


def test_bad_security_flags_are_usage_errors(tmp_path: Path, certs: Path) -> None:
    base = [
        sys.executable, "-m", "raftkv.cli.server_main", "serve", "--id", "1",
        "--listen", "127.0.0.1:1", "--cluster", "1=127.0.0.1:1", "--data-dir", str(tmp_path / "d"),
    ]  # fmt: skip
    cases = [
        (["--cert-file", str(certs / "node.crt")], "--key-file"),
        (
            ["--cert-file", str(certs / "node.crt"), "--key-file", str(certs / "node.key"),
             "--trusted-ca-file", str(certs / "other" / "ca.crt")],
            "not signed by a CA",
        ),
    ]  # fmt: skip
    for flags, message in cases:
        result = subprocess.run(
            [*base, *flags], capture_output=True, text=True, env=env(), cwd=ROOT, check=False
        )
        assert result.returncode in (1, 2), result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_health_check_over_tls(secure: SecureCluster, certs: Path) -> None:
    node = secure.nodes[0]
    base = [sys.executable, "-m", "raftkv.cli.server_main", "health", "--endpoint", node.address]
    tls = [
        "--cacert", str(certs / "ca.crt"),
        "--cert", str(certs / "node.crt"),
        "--key", str(certs / "node.key"),
    ]  # fmt: skip
    ok = subprocess.run([*base, *tls], capture_output=True, text=True, env=env(), check=False)
    assert ok.returncode == 0, ok.stderr
    plain = subprocess.run(
        [*base, "--timeout", "1"], capture_output=True, text=True, env=env(), check=False
    )
    assert plain.returncode == 2


def test_server_tls_without_client_certificates(tmp_path: Path, certs: Path) -> None:
    """--cert-file/--key-file/--trusted-ca-file only: clients need just the CA; nodes reach each
    other (and forward) over TLS without presenting certificates."""
    from raftkv.pb import kv_pb2_grpc as stubs
    from tests.integration.harness import Cluster

    flags = (
        "--cert-file", str(certs / "node.crt"),
        "--key-file", str(certs / "node.key"),
        "--trusted-ca-file", str(certs / "ca.crt"),
    )  # fmt: skip
    cluster = Cluster(tmp_path, 3, flags)
    for node in cluster.nodes:
        node.channel.close()
        node.channel = grpc.secure_channel(node.address, client_credentials(certs, cert=None))
        node.kv = stubs.KVStub(node.channel)  # type: ignore[no-untyped-call]
        node.admin = stubs.ClusterStub(node.channel)  # type: ignore[no-untyped-call]
    cluster.start()
    try:
        leader = cluster.wait_ready()
        follower = next(n for n in cluster.nodes if n is not leader)
        follower.put(b"x", b"1")
        assert leader.get(b"x") == b"1"
        assert follower.get(b"x") == b"1"
    finally:
        cluster.stop()
