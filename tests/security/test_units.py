"""The security pieces on their own: flag combinations, token files, roles, certificates."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from raftkv.cli.certs import init_certs
from raftkv.cli.server_main import main as server_main
from raftkv.client.credentials import ClientTls, read_token_file
from raftkv.server.auth import AuthError, Need, Role, TokenTable, need_of
from raftkv.server.security import Security, SecurityOptions
from raftkv.server.tls import PeerVerifier, TlsError, TlsFiles, TlsMaterial


def test_tls_flag_combinations(certs: Path) -> None:
    crt, key, ca = certs / "node.crt", certs / "node.key", certs / "ca.crt"
    bad = [
        ({"cert_file": crt}, "--key-file"),
        ({"peer_cert_file": crt, "peer_key_file": key}, "--peer-trusted-ca-file"),
        ({"client_cert_auth": True}, "--trusted-ca-file"),
        ({"cert_file": crt, "key_file": key}, "verify each other"),
        ({"peer_trusted_ca_file": ca}, "--peer-cert-file"),
    ]
    for kwargs, message in bad:
        with pytest.raises(TlsError, match=message):
            TlsFiles(**kwargs)  # type: ignore[arg-type]
    files = TlsFiles(
        cert_file=crt, key_file=key, peer_cert_file=crt, peer_key_file=key, peer_trusted_ca_file=ca
    )
    assert files.enabled and files.requires_client_cert


def test_a_serving_certificate_peers_cannot_verify_is_refused(certs: Path) -> None:
    files = TlsFiles(
        cert_file=certs / "node.crt",
        key_file=certs / "node.key",
        peer_cert_file=certs / "node.crt",
        peer_key_file=certs / "node.key",
        peer_trusted_ca_file=certs / "other" / "ca.crt",
    )
    with pytest.raises(TlsError, match="not signed by a CA in --peer-trusted-ca-file"):
        TlsMaterial(files)


def test_unreadable_or_malformed_files_name_the_flag(certs: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    files = TlsFiles(cert_file=certs / "node.crt", key_file=junk, trusted_ca_file=certs / "ca.crt")
    with pytest.raises(TlsError, match="--key-file"):
        TlsMaterial(files)
    files = TlsFiles(
        cert_file=certs / "node.crt", key_file=certs / "node.key", trusted_ca_file=junk
    )
    with pytest.raises(TlsError, match=r"--trusted-ca-file .* no PEM certificate"):
        TlsMaterial(files)


def test_peer_verifier_tells_the_cas_apart(certs: Path) -> None:
    verifier = PeerVerifier(x509.load_pem_x509_certificates((certs / "ca.crt").read_bytes()))
    node = (certs / "node.crt").read_bytes()
    client = (certs / "client.crt").read_bytes()
    stranger = (certs / "other" / "node.crt").read_bytes()
    assert verifier.is_peer({"x509_pem_cert": [node]})
    assert not verifier.is_peer({"x509_pem_cert": [client]})
    assert not verifier.is_peer({"x509_pem_cert": [stranger]})
    assert not verifier.is_peer({})
    assert not verifier.is_peer({"x509_pem_cert": [b"garbage"]})


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# comment\n\nadmin-token-aaaaaaaaaaaa admin\nuser-token-bbbbbbbbbbbbb user\n")
    table = TokenTable.load(path)
    assert table.role_of("admin-token-aaaaaaaaaaaa") is Role.ADMIN
    assert table.role_of("user-token-bbbbbbbbbbbbb") is Role.USER
    assert table.role_of("user-token-bbbbbbbbbbbbX") is None
    assert table.role_of("") is None
    for text, message in (
        ("secret-token-cccccccccc superuser\n", "line 1"),
        ("short user\n", "at least 16"),
        ("", "no tokens"),
    ):
        path.write_text(text)
        with pytest.raises(AuthError, match=message) as info:
            TokenTable.load(path)
        assert "secret-token" not in str(info.value)


def test_method_table() -> None:
    assert need_of("/grpc.health.v1.Health/Check") is Need.OPEN
    assert need_of("/raftkv.v1.Raft/Stream") is Need.PEER
    assert need_of("/raftkv.v1.KV/Put") is Need.USER
    assert need_of("/raftkv.v1.Cluster/Status") is Need.USER
    assert need_of("/raftkv.v1.Cluster/MemberList") is Need.USER
    for admin in ("TransferLeader", "Snapshot", "MemberAdd", "MemberRemove", "SomethingNew"):
        assert need_of(f"/raftkv.v1.Cluster/{admin}") is Need.ADMIN
    assert need_of("/unknown.Service/Method") is Need.ADMIN


def test_security_defaults_to_plaintext_and_open() -> None:
    security = Security.load(None)
    assert security.describe() == "plaintext"
    assert security.node_channel_credentials() is None
    assert len(security.interceptors()) == 1  # malformed requests are still refused clearly


def test_security_options_describe(certs: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("admin-token-aaaaaaaaaaaa admin\n")
    options = SecurityOptions(
        tls=TlsFiles(
            cert_file=certs / "node.crt",
            key_file=certs / "node.key",
            trusted_ca_file=certs / "client-ca.crt",
            client_cert_auth=True,
            peer_cert_file=certs / "node.crt",
            peer_key_file=certs / "node.key",
            peer_trusted_ca_file=certs / "ca.crt",
        ),
        auth_token_file=tokens,
    )
    text = Security.load(options).describe()
    assert text == "TLS, client certificates required, peer mTLS, bearer tokens"


def test_certs_init_writes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        server_main, ["certs", "init", str(tmp_path / "c"), "--name", "db.example"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "ca.key").stat().st_mode & 0o777 == 0o600
    node = x509.load_pem_x509_certificate((tmp_path / "c" / "node.crt").read_bytes())
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(sans.get_values_for_type(x509.DNSName))
    assert {"localhost", "raftkv1", "raftkv2", "raftkv3", "db.example"} <= names
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    again = runner.invoke(server_main, ["certs", "init", str(tmp_path / "c")])
    assert again.exit_code != 0 and "--force" in again.output


def test_init_certs_returns_paths(tmp_path: Path) -> None:
    paths = init_certs(tmp_path, nodes=5)
    assert {p.name for p in paths} >= {"ca.crt", "node.crt", "client.crt", "client-ca.crt"}


def test_client_credentials(tmp_path: Path, certs: Path) -> None:
    with pytest.raises(ValueError, match="--cert and --key"):
        ClientTls(cert=certs / "client.crt")
    with pytest.raises(ValueError, match="--cacert"):
        ClientTls(cacert=tmp_path / "missing").channel_credentials()
    token = tmp_path / "token"
    token.write_text("# mine\n  user-token-bbbbbbbbbbbbb  \n")
    assert read_token_file(token) == "user-token-bbbbbbbbbbbbb"
    token.write_text("\n")
    with pytest.raises(ValueError, match="no token"):
        read_token_file(token)
