"""TLS for clients and mutual TLS between peers, on the node's ONE gRPC port (etcd's flags).

Rules:
- One port serves Raft, KV and Cluster, so one TLS handshake must serve peers and clients alike:
  the server presents its serving certificate (``--cert-file``, else ``--peer-cert-file``) to
  everyone, trusts client certificates from ``--trusted-ca-file`` and ``--peer-trusted-ca-file``
  (both bundles), and REQUIRES one whenever ``--client-cert-auth`` or ``--peer-trusted-ca-file``
  is set. Which CA signed a certificate is then decided per call (:class:`PeerVerifier`): only a
  certificate issued by a CA of ``--peer-trusted-ca-file`` may call the Raft service.
- Outgoing node-to-node channels (Raft messages, forwarding to the leader) verify the remote's
  serving certificate against the peer CA (else the client CA) and present the peer certificate
  (else the serving one); start-up checks that the serving certificate is signed by that CA, so a
  cluster whose nodes cannot verify each other fails at once with a message saying why.
- Every file is read and parsed once, at start-up; a missing or malformed file is a
  :class:`TlsError` naming the flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from raftkv.server.settings import SettingsError


class TlsError(SettingsError):
    """A TLS flag or file is wrong; the message names the flag and says how to fix it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    """The paths as the flags give them (``None``: not set)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    trusted_ca_file: Path | None = None
    client_cert_auth: bool = False
    peer_cert_file: Path | None = None
    peer_key_file: Path | None = None
    peer_trusted_ca_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise TlsError("--cert-file and --key-file go together")
        if (self.peer_cert_file is None) != (self.peer_key_file is None):
            raise TlsError("--peer-cert-file and --peer-key-file go together")
        if self.client_cert_auth and (self.trusted_ca_file is None or self.cert_file is None):
            raise TlsError("--client-cert-auth needs --trusted-ca-file, --cert-file and --key-file")
        if self.trusted_ca_file is not None and not self.enabled:
            raise TlsError("--trusted-ca-file needs --cert-file and --key-file")
        if self.peer_cert_file is not None and self.peer_trusted_ca_file is None:
            raise TlsError(
                "--peer-cert-file needs --peer-trusted-ca-file (peers must verify each other)"
            )
        if self.peer_trusted_ca_file is not None and self.peer_cert_file is None:
            raise TlsError("--peer-trusted-ca-file needs --peer-cert-file and --peer-key-file")
        if self.enabled and self.peer_trusted_ca_file is None and self.trusted_ca_file is None:
            raise TlsError(
                "with --cert-file, nodes must verify each other: give --peer-trusted-ca-file "
                "(mutual TLS between peers) or at least --trusted-ca-file"
            )

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None or self.peer_cert_file is not None

    @property
    def requires_client_cert(self) -> bool:
        return self.client_cert_auth or self.peer_trusted_ca_file is not None


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"{flag} {path}: cannot read: {exc.strerror or exc}") from None


def _certs(data: bytes, path: Path, flag: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TlsError(f"{flag} {path}: no PEM certificate in it")
    return certs


def _check_key(data: bytes, path: Path, flag: str) -> None:
    if b"PRIVATE KEY-----" not in data:
        raise TlsError(f"{flag} {path}: not a PEM private key")


def issued_by_any(cert: x509.Certificate, cas: list[x509.Certificate]) -> bool:
    """Whether one of ``cas`` issued ``cert`` (name and signature checked)."""
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return True
    return False


class TlsMaterial:
    """The files of :class:`TlsFiles`, read and checked once."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        f = files
        self.client_ca = b""
        self.client_ca_certs: list[x509.Certificate] = []
        if f.trusted_ca_file is not None:
            self.client_ca = _read(f.trusted_ca_file, "--trusted-ca-file")
            self.client_ca_certs = _certs(self.client_ca, f.trusted_ca_file, "--trusted-ca-file")
        self.peer_ca = b""
        self.peer_ca_certs: list[x509.Certificate] = []
        if f.peer_trusted_ca_file is not None:
            self.peer_ca = _read(f.peer_trusted_ca_file, "--peer-trusted-ca-file")
            self.peer_ca_certs = _certs(
                self.peer_ca, f.peer_trusted_ca_file, "--peer-trusted-ca-file"
            )
        self.serving: tuple[bytes, bytes] | None = None
        self.peer_pair: tuple[bytes, bytes] | None = None
        if f.cert_file is not None and f.key_file is not None:
            self.serving = self._pair(f.key_file, f.cert_file, "--key-file", "--cert-file")
        if f.peer_cert_file is not None and f.peer_key_file is not None:
            self.peer_pair = self._pair(
                f.peer_key_file, f.peer_cert_file, "--peer-key-file", "--peer-cert-file"
            )
            if self.serving is None:
                self.serving = self.peer_pair
        if self.serving is not None:
            self._check_peers_can_verify()

    @staticmethod
    def _pair(key: Path, cert: Path, key_flag: str, cert_flag: str) -> tuple[bytes, bytes]:
        key_pem = _read(key, key_flag)
        _check_key(key_pem, key, key_flag)
        cert_pem = _read(cert, cert_flag)
        _certs(cert_pem, cert, cert_flag)
        return key_pem, cert_pem

    def _check_peers_can_verify(self) -> None:
        assert self.serving is not None
        leaf = x509.load_pem_x509_certificates(self.serving[1])[0]
        _, flag = self.outgoing_roots()
        cas = self.peer_ca_certs if flag == "--peer-trusted-ca-file" else self.client_ca_certs
        if not issued_by_any(leaf, cas):
            raise TlsError(
                f"the serving certificate ({leaf.subject.rfc4514_string()}) is not signed by a CA "
                f"in {flag}; peers connect to the same port and could not verify this node"
            )

    def outgoing_roots(self) -> tuple[bytes, str]:
        if self.peer_ca:
            return self.peer_ca, "--peer-trusted-ca-file"
        return self.client_ca, "--trusted-ca-file"

    def server_credentials(self) -> Any:
        assert self.serving is not None
        roots = self.client_ca + (b"\n" if self.client_ca else b"") + self.peer_ca
        return grpc.ssl_server_credentials(
            [self.serving],
            root_certificates=roots or None,
            require_client_auth=self.files.requires_client_cert,
        )

    def node_channel_credentials(self) -> Any:
        """What a node dials other nodes with (Raft messages and forwarding to the leader)."""
        roots, _ = self.outgoing_roots()
        pair = self.peer_pair or (self.serving if self.files.requires_client_cert else None)
        if pair is None:
            return grpc.ssl_channel_credentials(root_certificates=roots)
        return grpc.ssl_channel_credentials(
            root_certificates=roots, private_key=pair[0], certificate_chain=pair[1]
        )

    def peer_verifier(self) -> PeerVerifier | None:
        return PeerVerifier(self.peer_ca_certs) if self.peer_ca_certs else None


class PeerVerifier:
    """Tells, per call, whether the caller's verified certificate was issued by a peer CA.

    grpc has verified the chain against the union of both CA bundles already; here we only ask
    WHICH CA issued it. Results are cached per certificate (a node has few peers)."""

    def __init__(self, cas: list[x509.Certificate]) -> None:
        self._cas = cas
        self._cache: dict[bytes, bool] = {}

    def is_peer(self, auth_context: dict[str, list[bytes]]) -> bool:
        pems = auth_context.get("x509_pem_cert") or []
        if not pems:
            return False
        pem = pems[0]
        known = self._cache.get(pem)
        if known is None:
            try:
                cert = x509.load_pem_x509_certificate(pem)
            except ValueError:
                return False
            known = issued_by_any(cert, self._cas)
            if len(self._cache) < 1024:
                self._cache[pem] = known
        return known
