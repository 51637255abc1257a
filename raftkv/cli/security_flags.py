"""``raftkv serve``'s security flags (etcd's names), each also read from ``RAFTKV_<FLAG>``.

Rules: this module only declares and collects flags; what they mean and how they combine is
:mod:`raftkv.server.tls` and :mod:`raftkv.server.auth` (a wrong combination is a SettingsError
naming the flags, which ``serve`` reports as a usage error).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from raftkv.server.security import SecurityOptions
from raftkv.server.tls import TlsFiles

F = TypeVar("F", bound=Callable[..., Any])

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)

_OPTIONS = [
    click.option(
        "--cert-file",
        type=_FILE,
        envvar="RAFTKV_CERT_FILE",
        help="TLS certificate this node serves.",
    ),
    click.option("--key-file", type=_FILE, envvar="RAFTKV_KEY_FILE", help="Its private key."),
    click.option(
        "--trusted-ca-file",
        type=_FILE,
        envvar="RAFTKV_TRUSTED_CA_FILE",
        help="CA bundle for client certificates (and, without a peer CA, for peers).",
    ),
    click.option(
        "--client-cert-auth",
        is_flag=True,
        envvar="RAFTKV_CLIENT_CERT_AUTH",
        help="Require client certificates signed by --trusted-ca-file.",
    ),
    click.option(
        "--peer-cert-file",
        type=_FILE,
        envvar="RAFTKV_PEER_CERT_FILE",
        help="Certificate this node presents to peers.",
    ),
    click.option(
        "--peer-key-file", type=_FILE, envvar="RAFTKV_PEER_KEY_FILE", help="Its private key."
    ),
    click.option(
        "--peer-trusted-ca-file",
        type=_FILE,
        envvar="RAFTKV_PEER_TRUSTED_CA_FILE",
        help="CA bundle for peers: only certificates it issued may call the Raft service "
        "(all callers then need a certificate: peers and clients share the port).",
    ),
    click.option(
        "--auth-token-file",
        type=_FILE,
        envvar="RAFTKV_AUTH_TOKEN_FILE",
        help="Bearer tokens, one 'TOKEN ROLE' per line (ROLE: user or admin).",
    ),
]


def security_options(command: F) -> F:
    """Decorate a click command with every security flag."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def security_from_flags(
    *,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    trusted_ca_file: Path | None = None,
    client_cert_auth: bool = False,
    peer_cert_file: Path | None = None,
    peer_key_file: Path | None = None,
    peer_trusted_ca_file: Path | None = None,
    auth_token_file: Path | None = None,
) -> SecurityOptions:
    return SecurityOptions(
        tls=TlsFiles(
            cert_file=cert_file,
            key_file=key_file,
            trusted_ca_file=trusted_ca_file,
            client_cert_auth=client_cert_auth,
            peer_cert_file=peer_cert_file,
            peer_key_file=peer_key_file,
            peer_trusted_ca_file=peer_trusted_ca_file,
        ),
        auth_token_file=auth_token_file,
    )
