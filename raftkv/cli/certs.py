"""``raftkv certs init DIR``: a development CA and certificates for nodes and a client.

Rules: for development and tests only (keys are unencrypted, files 0600). Two CAs, so that a
client certificate can never pass for a peer:
- ``ca.crt`` (the cluster CA) signs ``node.crt``, usable for serving AND as the peer certificate
  (serverAuth + clientAuth), with SANs for 127.0.0.1, ::1, localhost and the compose service names
  ``raftkv1..N``. Nodes trust it as ``--peer-trusted-ca-file``; clients as ``--cacert``.
- ``client-ca.crt`` signs ``client.crt`` (clientAuth only). Nodes trust it as
  ``--trusted-ca-file``.
Existing files are never overwritten unless ``--force``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FILES = (
    "ca.crt", "ca.key", "client-ca.crt", "client-ca.key",
    "node.crt", "node.key", "client.crt", "client.key",
)  # fmt: skip


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "raftkv development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(common_name: str, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    dns: list[str],
    ips: list[str],
    server: bool,
    days: int,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _write(path: Path, data: bytes, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def init_certs(
    directory: Path, *, nodes: int = 3, extra_names: tuple[str, ...] = (), days: int = 365
) -> list[Path]:
    """Write the CA, node and client certificates into ``directory``; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = make_ca("raftkv development CA", days)
    client_ca, client_ca_key = make_ca("raftkv development client CA", days)
    dns = ["localhost", *(f"raftkv{i}" for i in range(1, nodes + 1))]
    ips = ["127.0.0.1", "::1"]
    for name in extra_names:
        try:
            ipaddress.ip_address(name)
            ips.append(name)
        except ValueError:
            dns.append(name)
    node, node_key = make_leaf(ca, ca_key, "raftkv node", dns=dns, ips=ips, server=True, days=days)
    client, client_key = make_leaf(
        client_ca, client_ca_key, "raftkv client", dns=[], ips=[], server=False, days=days
    )
    pem = serialization.Encoding.PEM
    out = {
        "ca.crt": (ca.public_bytes(pem), False),
        "ca.key": (_key_pem(ca_key), True),
        "client-ca.crt": (client_ca.public_bytes(pem), False),
        "client-ca.key": (_key_pem(client_ca_key), True),
        "node.crt": (node.public_bytes(pem), False),
        "node.key": (_key_pem(node_key), True),
        "client.crt": (client.public_bytes(pem), False),
        "client.key": (_key_pem(client_key), True),
    }
    paths = []
    for name, (data, private) in out.items():
        _write(directory / name, data, private)
        paths.append(directory / name)
    return paths


@click.group()
def certs() -> None:
    """Development certificates for TLS (not for production)."""


@certs.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--nodes",
    type=click.IntRange(1, 99),
    default=3,
    show_default=True,
    help="Compose service names raftkv1..N go into the node certificate's SANs.",
)
@click.option("--name", "names", multiple=True, help="An extra DNS name or IP for the SANs.")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init(directory: Path, nodes: int, names: tuple[str, ...], days: int, force: bool) -> None:
    """Create a development CA, a node certificate and a client certificate in DIRECTORY."""
    existing = [n for n in FILES if (directory / n).exists()]
    if existing and not force:
        raise click.ClickException(
            f"{directory} already holds {', '.join(existing)}; use --force to overwrite"
        )
    for path in init_certs(directory, nodes=nodes, extra_names=names, days=days):
        click.echo(f"wrote {path}")
    click.echo(
        "serve with: --cert-file node.crt --key-file node.key --trusted-ca-file client-ca.crt "
        "--client-cert-auth --peer-cert-file node.crt --peer-key-file node.key "
        "--peer-trusted-ca-file ca.crt"
    )
    click.echo("connect with: raftkv-cli --cacert ca.crt --cert client.crt --key client.key ...")
