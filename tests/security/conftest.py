"""A 3-node cluster with every security feature on: TLS, client certificates, peer mTLS, tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from raftkv.cli.certs import init_certs
from tests.integration.harness import Cluster, Node

ADMIN_TOKEN = "admin-token-0123456789abcdef"
USER_TOKEN = "user-token-0123456789abcdef"


def read(certs: Path, name: str) -> bytes:
    return (certs / name).read_bytes()


def client_credentials(certs: Path, *, cert: str | None = "client") -> grpc.ChannelCredentials:
    if cert is None:
        return grpc.ssl_channel_credentials(read(certs, "ca.crt"))
    return grpc.ssl_channel_credentials(
        read(certs, "ca.crt"), read(certs, f"{cert}.key"), read(certs, f"{cert}.crt")
    )


class SecureCluster(Cluster):
    """The integration harness, with every node's channel speaking mTLS and carrying a token."""

    def __init__(self, root: Path, certs: Path, tokens: Path) -> None:
        self.certs = certs
        extra = (
            "--cert-file", str(certs / "node.crt"),
            "--key-file", str(certs / "node.key"),
            "--trusted-ca-file", str(certs / "client-ca.crt"),
            "--client-cert-auth",
            "--peer-cert-file", str(certs / "node.crt"),
            "--peer-key-file", str(certs / "node.key"),
            "--peer-trusted-ca-file", str(certs / "ca.crt"),
            "--auth-token-file", str(tokens),
        )  # fmt: skip
        super().__init__(root, 3, extra)
        for node in self.nodes:
            self._secure(node)

    def _secure(self, node: Node) -> None:
        from raftkv.pb import kv_pb2_grpc

        node.channel.close()
        creds = grpc.composite_channel_credentials(
            client_credentials(self.certs), grpc.access_token_call_credentials(ADMIN_TOKEN)
        )
        node.channel = grpc.secure_channel(node.address, creds)
        node.kv = kv_pb2_grpc.KVStub(node.channel)  # type: ignore[no-untyped-call]
        node.admin = kv_pb2_grpc.ClusterStub(node.channel)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    init_certs(directory)
    other = directory / "other"
    init_certs(other)  # another CA entirely: its certificates must be refused
    return directory


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[SecureCluster]:
    root = tmp_path_factory.mktemp("secure")
    tokens = root / "tokens"
    tokens.write_text(f"# test tokens\n{ADMIN_TOKEN} admin\n{USER_TOKEN} user\n")
    c = SecureCluster(root, certs, tokens)
    c.start()
    try:
        c.wait_ready()
        yield c
    finally:
        c.stop()
