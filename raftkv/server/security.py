"""A node's security, assembled once at start-up: TLS credentials, tokens, the interceptor.

Rules: :class:`SecurityOptions` is what the flags say; :meth:`Security.load` reads and checks
every file (a bad one is a :class:`~raftkv.server.tls.TlsError` or
:class:`~raftkv.server.auth.AuthError`, both ``ValueError``s that name the flag); the rest of the
server only asks this object for credentials and interceptors. With no options set, everything is
plaintext and open, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftkv.server.auth import Guard, TokenTable
from raftkv.server.tls import TlsFiles, TlsMaterial
from raftkv.server.wire import ServiceInterceptor


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityOptions:
    tls: TlsFiles = field(default_factory=TlsFiles)
    auth_token_file: Path | None = None


class Security:
    def __init__(
        self, material: TlsMaterial | None, tokens: TokenTable | None, options: SecurityOptions
    ) -> None:
        self.options = options
        self.material = material
        self.tokens = tokens
        self.peers = material.peer_verifier() if material is not None else None

    @classmethod
    def load(cls, options: SecurityOptions | None) -> Security:
        options = options or SecurityOptions()
        material = TlsMaterial(options.tls) if options.tls.enabled else None
        tokens = (
            TokenTable.load(options.auth_token_file)
            if options.auth_token_file is not None
            else None
        )
        return cls(material, tokens, options)

    def describe(self) -> str:
        parts = []
        if self.material is None:
            parts.append("plaintext")
        else:
            parts.append("TLS")
            if self.options.tls.requires_client_cert:
                parts.append("client certificates required")
            if self.peers is not None:
                parts.append("peer mTLS")
        if self.tokens is not None:
            parts.append("bearer tokens")
        return ", ".join(parts)

    def interceptors(
        self,
        on_refused: Callable[[str], None] | None = None,
        max_request_bytes: int | None = None,
    ) -> list[Any]:
        """Always one: it also refuses malformed and oversized requests clearly."""
        guard = Guard(tokens=self.tokens, peers=self.peers)
        return [ServiceInterceptor(guard, on_refused, max_request_bytes)]

    def node_channel_credentials(self) -> Any:
        """For channels to other nodes (None: plaintext)."""
        return self.material.node_channel_credentials() if self.material is not None else None

    def add_port(self, server: Any, address: str) -> int:
        if self.material is None:
            return int(server.add_insecure_port(address))
        return int(server.add_secure_port(address, self.material.server_credentials()))
