"""``raftkv health``: ask a node's standard gRPC health service whether it is SERVING.

Made for container and orchestrator health checks (the Dockerfile's HEALTHCHECK, compose
healthchecks), so it needs no extra binary such as grpc_health_probe.

Rules this module keeps:
- Exit 0 when the service answers SERVING; exit 1 when it answers anything else (NOT_SERVING,
  UNKNOWN, SERVICE_UNKNOWN); exit 2 when the node cannot be reached within the timeout. One line
  on stderr says which, never a traceback; ``-q`` silences the line on success.
- The endpoint defaults to the node's own gRPC port: ``$RAFTKV_HEALTH_ENDPOINT``, else the port of
  ``$RAFTKV_LISTEN`` on loopback (a wildcard host such as 0.0.0.0 becomes 127.0.0.1), else
  127.0.0.1:7001. So inside a container configured through RAFTKV_* variables the bare command
  checks the node it runs beside.
- TLS: ``--cacert``/``--cert``/``--key`` (or RAFTKV_CACERT, RAFTKV_CERT, RAFTKV_KEY, as for
  raftkv-cli); a node that requires client certificates accepts its own node certificate.
- The server engineer registers it: ``main.add_command(health)`` in ``raftkv/cli/server_main.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raftkv.client.credentials import ClientTls

__all__ = ["EXIT_NOT_SERVING", "EXIT_SERVING", "EXIT_UNREACHABLE", "default_endpoint", "health"]

EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
EXIT_UNREACHABLE = 2

_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]", "*"}
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def default_endpoint(environ: dict[str, str] | None = None) -> str:
    """The endpoint a bare ``raftkv health`` checks, from the environment (see module rules)."""
    env = os.environ if environ is None else environ
    explicit = env.get("RAFTKV_HEALTH_ENDPOINT", "").strip()
    if explicit:
        return explicit
    listen = env.get("RAFTKV_LISTEN", "").strip()
    if listen and ":" in listen:
        host, _, port = listen.rpartition(":")
        if host in _WILDCARD_HOSTS:
            host = "127.0.0.1"
        return f"{host}:{port}"
    return "127.0.0.1:7001"


def _channel(endpoint: str, tls: ClientTls | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(endpoint)
    return grpc.secure_channel(endpoint, tls.channel_credentials())


def _check(endpoint: str, service: str, timeout_s: float, tls: ClientTls | None = None) -> str:
    """The status name the health service answers; raises grpc.RpcError when unreachable."""
    with _channel(endpoint, tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


@click.command()
@click.option(
    "--endpoint",
    default=None,
    metavar="HOST:PORT",
    help="Node to check (default: $RAFTKV_HEALTH_ENDPOINT, else loopback at $RAFTKV_LISTEN's "
    "port, else 127.0.0.1:7001).",
)
@click.option(
    "--service",
    default="",
    show_default=True,
    help="Health service name to ask about; '' is the whole server.",
)
@click.option(
    "--timeout", "timeout_s", type=float, default=3.0, show_default=True, help="Seconds to wait."
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when SERVING.")
@click.option("--cacert", type=_FILE, envvar="RAFTKV_CACERT", help="Use TLS with this CA bundle.")
@click.option("--cert", type=_FILE, envvar="RAFTKV_CERT", help="Client certificate (with --key).")
@click.option("--key", type=_FILE, envvar="RAFTKV_KEY", help="Client certificate's key.")
def health(
    *,
    endpoint: str | None,
    service: str,
    timeout_s: float,
    quiet: bool,
    cacert: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
) -> None:
    """Exit 0 when the node answers SERVING (1: not serving, 2: unreachable)."""
    target = endpoint or default_endpoint()
    try:
        tls = ClientTls(cacert=cacert, cert=cert, key=key) if cacert or cert or key else None
        status = _check(target, service, timeout_s, tls)
    except ValueError as exc:
        click.echo(f"{target}: {exc}", err=True)
        raise SystemExit(EXIT_UNREACHABLE) from None
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        name = code.name if code is not None else "UNKNOWN"
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        if name == "NOT_FOUND":
            click.echo(f"{target}: health service does not know service {service!r}", err=True)
            raise SystemExit(EXIT_NOT_SERVING) from None
        click.echo(f"{target}: unreachable ({name}: {details})", err=True)
        raise SystemExit(EXIT_UNREACHABLE) from None
    if status == "SERVING":
        if not quiet:
            click.echo(f"{target}: SERVING", err=True)
        raise SystemExit(EXIT_SERVING)
    click.echo(f"{target}: {status}", err=True)
    raise SystemExit(EXIT_NOT_SERVING)
