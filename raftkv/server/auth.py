"""Who may call what: bearer tokens with roles, and the Raft service only for peers.

Rules:
- ``--auth-token-file``: one ``TOKEN ROLE`` per line (role ``user`` or ``admin``; ``#`` comments
  and blank lines ignored). Tokens are compared in constant time (sha256 digests of equal length,
  ``hmac.compare_digest`` against EVERY known token, no early exit) and never logged: errors name
  line numbers, never token text.
- Clients send ``authorization: Bearer TOKEN``. KV, Cluster.Status, Cluster.MemberList and
  reflection need ``user``; every other Cluster method (leadership transfer, backups, membership
  changes) needs ``admin``; so does any method this table does not know (deny by default).
  Health is open (probes).
- The Raft service takes no tokens: with ``--peer-trusted-ca-file`` it is open only to callers
  whose certificate a peer CA issued (PERMISSION_DENIED otherwise); without it, it is as open as
  the port (the cluster-id check still applies).
- Forwarding: the caller's token rides along on what a follower forwards (see
  :func:`outgoing_metadata`); a coalesced batch carries the token of one of its callers, each of
  whom the follower already checked for ``user``, which is all a batch needs. A forwarded call
  from a verified peer certificate is also accepted for KV methods without a token.
- Refusals: UNAUTHENTICATED (no or unknown token) and PERMISSION_DENIED (role or certificate too
  weak), each with a message saying what to do.
"""

from __future__ import annotations

import contextvars
import enum
import hashlib
import hmac
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from raftkv.server.context import FORWARDED_KEY
from raftkv.server.settings import SettingsError
from raftkv.server.tls import PeerVerifier

log = logging.getLogger(__name__)

AUTH_METADATA_KEY = "authorization"
_BEARER = "bearer "


class AuthError(SettingsError):
    """The token file is unusable; the message names the file and line, never a token."""


class Role(enum.IntEnum):
    USER = 1
    ADMIN = 2


class Need(enum.Enum):
    OPEN = "open"
    PEER = "peer"
    USER = "user"
    ADMIN = "admin"


_ROLES = {"user": Role.USER, "admin": Role.ADMIN}

_caller_token: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "raftkv_caller_token", default=None
)


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the current caller's token on a forwarded call (empty if none)."""
    return bearer_metadata(_caller_token.get())


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries ``token`` as :func:`_bearer` reads it (none without one).
    The client library has its twin (raftkv.client may not import the server)."""
    return ((AUTH_METADATA_KEY, "Bearer " + token),) if token else ()


_CLUSTER_READS = frozenset({"/raftkv.v1.Cluster/Status", "/raftkv.v1.Cluster/MemberList"})


def need_of(method: str) -> Need:
    """What a full method name (``/package.Service/Method``) requires."""
    if method.startswith("/grpc.health.v1.Health/"):
        return Need.OPEN
    if method.startswith("/raftkv.v1.Raft/"):
        return Need.PEER
    if method.startswith("/raftkv.v1.KV/") or method in _CLUSTER_READS:
        return Need.USER
    if method.startswith("/grpc.reflection."):
        return Need.USER
    return Need.ADMIN


class TokenTable:
    """Token digests and their roles; lookups in constant time over the whole table."""

    def __init__(self, entries: Sequence[tuple[str, Role]]) -> None:
        if not entries:
            raise AuthError("the token file holds no tokens")
        self._entries = [(_digest(token), role) for token, role in entries]

    @classmethod
    def load(cls, path: Path) -> TokenTable:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise AuthError(f"--auth-token-file {path}: cannot read: {exc}") from None
        entries: list[tuple[str, Role]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) != 2 or fields[1] not in _ROLES:
                raise AuthError(
                    f"--auth-token-file {path} line {number}: expected 'TOKEN ROLE' with ROLE "
                    "user or admin"
                )
            if len(fields[0]) < 16:
                raise AuthError(
                    f"--auth-token-file {path} line {number}: tokens need at least 16 characters"
                )
            entries.append((fields[0], _ROLES[fields[1]]))
        return cls(entries)

    def role_of(self, token: str) -> Role | None:
        presented = _digest(token)
        found = 0
        for digest, role in self._entries:
            # No early exit: the time taken does not depend on which token matched, or where.
            match = hmac.compare_digest(digest, presented)
            found = max(found, int(role) * match)
        return Role(found) if found else None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _bearer(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key == AUTH_METADATA_KEY:
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            if text[: len(_BEARER)].lower() == _BEARER:
                return text[len(_BEARER) :].strip()
            return ""
    return None


Refusal = tuple[grpc.StatusCode, str]


class Guard:
    """Decides one call: ``check`` returns None (allowed) or the refusal."""

    def __init__(self, *, tokens: TokenTable | None, peers: PeerVerifier | None) -> None:
        self.tokens = tokens
        self.peers = peers

    def applies(self, need: Need) -> bool:
        if need is Need.OPEN:
            return False
        if need is Need.PEER:
            return self.peers is not None
        return self.tokens is not None

    def check(self, method: str, need: Need, metadata: Any, context: Any) -> Refusal | None:
        if need is Need.PEER:
            if self.peers is not None and not self.peers.is_peer(context.auth_context()):
                return grpc.StatusCode.PERMISSION_DENIED, (
                    "the Raft service is for cluster peers only: present a certificate issued "
                    "by a CA in the node's --peer-trusted-ca-file"
                )
            return None
        assert self.tokens is not None
        token = _bearer(metadata)
        name = method.lstrip("/").removeprefix("raftkv.v1.")
        if token is None:
            if self._forwarded_by_peer(method, metadata, context):
                return None
            return grpc.StatusCode.UNAUTHENTICATED, (
                f"{name} needs a bearer token: pass --token-file (or RAFTKV_TOKEN_FILE)"
            )
        role = self.tokens.role_of(token) if token else None
        if role is None:
            return grpc.StatusCode.UNAUTHENTICATED, (
                "the bearer token is not valid here (check --token-file)"
            )
        if need is Need.ADMIN and role < Role.ADMIN:
            return grpc.StatusCode.PERMISSION_DENIED, (
                f"{name} needs the admin role; this token has role user"
            )
        _caller_token.set(token)
        return None

    def _forwarded_by_peer(self, method: str, metadata: Any, context: Any) -> bool:
        if self.peers is None or not method.startswith("/raftkv.v1.KV/"):
            return False
        if not any(key == FORWARDED_KEY for key, _ in metadata or ()):
            return False
        return self.peers.is_peer(context.auth_context())
