"""How the client proves who it is and checks whom it talks to: TLS files and a bearer token.

Rules: files are read once, when the client is built, and a missing or unreadable one is a
``ValueError`` naming it; the token is sent as ``authorization: Bearer TOKEN`` metadata on every
call and never logged or put in an error message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

__all__ = ["ClientTls", "read_token_file"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTls:
    """``cacert``: the CA bundle that signed the nodes' certificates (None: the system roots);
    ``cert``/``key``: this client's certificate, for clusters that require one."""

    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs both --cert and --key")

    def channel_credentials(self) -> Any:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.cacert, "--cacert"),
            private_key=_read(self.key, "--key"),
            certificate_chain=_read(self.cert, "--cert"),
        )


def _read(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot read: {exc.strerror or exc}") from None


def read_token_file(path: Path) -> str:
    """The token in ``path``: its first non-blank, non-comment line's first word."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"token file {path}: cannot read: {exc}") from None
    for line in text.splitlines():
        words = line.split()
        if words and not words[0].startswith("#"):
            return words[0]
    raise ValueError(f"token file {path}: no token in it")
