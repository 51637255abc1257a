"""``raftkv-cli``'s TLS and token flags: --cacert, --cert, --key, --token-file (RAFTKV_* too).

Rules: flags are only collected here; files are read when the client is built, and a bad one is
a usage error naming the flag. ``describe_tls_hint`` turns the transport's bare "unavailable" into
a hint when the likely cause is a TLS mismatch (grpc cannot tell a refused handshake apart).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from raftkv.client.credentials import ClientTls, read_token_file

F = TypeVar("F", bound=Callable[..., Any])

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)

_OPTIONS = [
    click.option(
        "--cacert",
        type=_FILE,
        envvar="RAFTKV_CACERT",
        help="Use TLS, verifying the nodes with this CA bundle.",
    ),
    click.option(
        "--cert", type=_FILE, envvar="RAFTKV_CERT", help="Client certificate (TLS, with --key)."
    ),
    click.option("--key", type=_FILE, envvar="RAFTKV_KEY", help="Client certificate's key."),
    click.option(
        "--token-file",
        type=_FILE,
        envvar="RAFTKV_TOKEN_FILE",
        help="File holding a bearer token (its first word).",
    ),
]


@dataclass(frozen=True, slots=True)
class ClientSecurity:
    tls: ClientTls | None = None
    token: str | None = None


def client_security_options(command: F) -> F:
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def client_security_from_flags(
    *,
    cacert: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    token_file: Path | None = None,
) -> ClientSecurity:
    try:
        tls = (
            ClientTls(cacert=cacert, cert=cert, key=key)
            if cacert is not None or cert is not None or key is not None
            else None
        )
        token = read_token_file(token_file) if token_file is not None else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return ClientSecurity(tls=tls, token=token)


def describe_tls_hint(message: str, security: ClientSecurity | None) -> str:
    """A hint to add to an 'unavailable' message whose cause may be TLS (else '')."""
    lowered = message.lower()
    closed = any(s in lowered for s in ("socket closed", "connection reset", "eof"))
    if security is None or security.tls is None:
        if closed:
            return (
                " (the node closed the connection: if the cluster uses TLS, pass --cacert, and "
                "--cert/--key if it requires client certificates)"
            )
        return ""
    if closed and security.tls.cert is None:
        return " (the cluster may require a client certificate: pass --cert and --key)"
    if closed or any(s in lowered for s in ("ssl", "handshake", "certificate")):
        return " (TLS handshake failed: check --cacert, --cert and --key)"
    return ""
