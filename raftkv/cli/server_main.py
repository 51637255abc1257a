"""``raftkv``: run nodes: ``serve`` one node, ``up`` a local cluster, ``restore`` from a backup.

Rules: parse, wire, run; every flag also reads ``RAFTKV_<FLAG>`` from the environment (e.g.
RAFTKV_ID, RAFTKV_DATA_DIR); a bad flag or data directory is ONE line on stderr and exit code 2
(usage) or 1 (start-up failure), never a traceback. Output on stdout is for people (``up``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from raftkv import __version__
from raftkv.cli import event_loop
from raftkv.cli.certs import certs
from raftkv.cli.health import health
from raftkv.cli.security_flags import security_from_flags, security_options
from raftkv.client.credentials import read_token_file
from raftkv.core.membership import membership_of
from raftkv.core.types import NodeId
from raftkv.kv.restore import restore_backup
from raftkv.logging_setup import configure_logging
from raftkv.server.app import NodeServer
from raftkv.server.join import join_cluster, prepare_start
from raftkv.server.local_cluster import run_up
from raftkv.server.security import SecurityOptions
from raftkv.server.settings import Settings, SettingsError, cluster_id_for, parse_cluster
from raftkv.storage.errors import StorageError

log = logging.getLogger(__name__)

EXIT_STARTUP_FAILED = 1
EXIT_USAGE = 2


@click.group(context_settings={"auto_envvar_prefix": "RAFTKV"})
@click.version_option(__version__, prog_name="raftkv")
def main() -> None:
    """raftkv: a replicated, linearizable key-value store."""


@main.command()
@click.option(
    "--id",
    "node_id",
    type=click.IntRange(min=1),
    required=True,
    envvar="RAFTKV_ID",
    help="This node's id in --cluster.",
)
@click.option(
    "--listen",
    required=True,
    envvar="RAFTKV_LISTEN",
    help="HOST:PORT for gRPC (Raft, KV, Cluster, health, reflection).",
)
@click.option(
    "--cluster",
    default="",
    envvar="RAFTKV_CLUSTER",
    help="ID=HOST:PORT,... of every member (bootstraps a new data directory). A node that joined "
    "with --join restarts without it: its log holds the members' addresses.",
)
@click.option(
    "--join",
    default="",
    envvar="RAFTKV_JOIN",
    help="ADDR[,ADDR...] of running members: join that cluster as a learner (empty --data-dir).",
)
@click.option(
    "--join-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    envvar="RAFTKV_JOIN_TOKEN_FILE",
    help="File holding an admin bearer token (its first word) for --join's request, when the "
    "cluster checks tokens (--auth-token-file).",
)
@click.option(
    "--auto-promote-lag",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    envvar="RAFTKV_AUTO_PROMOTE_LAG",
    help="As leader, promote a learner within this many log entries (0: only explicitly).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    required=True,
    envvar="RAFTKV_DATA_DIR",
    help="This node's data directory.",
)
@click.option(
    "--advertise",
    default="",
    envvar="RAFTKV_ADVERTISE",
    help="HOST:PORT clients should use for this node (default: its --cluster address).",
)
@click.option(
    "--metrics-listen",
    default="",
    envvar="RAFTKV_METRICS_LISTEN",
    help="HOST:PORT for Prometheus /metrics (off when empty).",
)
@click.option(
    "--heartbeat-ms", type=int, default=50, show_default=True, envvar="RAFTKV_HEARTBEAT_MS"
)
@click.option(
    "--election-timeout-ms",
    type=int,
    default=150,
    show_default=True,
    envvar="RAFTKV_ELECTION_TIMEOUT_MS",
    help="Minimum election timeout; the actual one is random in [T, 2T).",
)
@click.option(
    "--snapshot-threshold",
    type=int,
    default=10_000,
    show_default=True,
    envvar="RAFTKV_SNAPSHOT_THRESHOLD",
    help="Compact the log beyond this many entries.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    envvar="RAFTKV_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    envvar="RAFTKV_LOG_FORMAT",
    type=click.Choice(["text", "json"]),
)
@security_options
def serve(
    *,
    node_id: int,
    listen: str,
    cluster: str,
    join: str,
    join_token_file: Path | None,
    auto_promote_lag: int,
    data_dir: Path,
    advertise: str,
    metrics_listen: str,
    heartbeat_ms: int,
    election_timeout_ms: int,
    snapshot_threshold: int,
    log_level: str,
    log_format: str,
    **tls_flags: Any,
) -> None:
    """Run one node of a cluster in the foreground (SIGTERM/SIGINT stop it cleanly)."""
    try:
        event_loop.check_choice()
    except event_loop.EventLoopChoiceError as exc:
        _fail(str(exc), EXIT_USAGE)
    try:
        security = security_from_flags(**tls_flags)
        settings = Settings(
            node_id=NodeId(node_id),
            listen=listen,
            cluster=parse_cluster(cluster) if cluster else {NodeId(node_id): advertise or listen},
            data_dir=data_dir,
            advertise=advertise,
            metrics_listen=metrics_listen,
            heartbeat_ms=heartbeat_ms,
            election_timeout_ms=election_timeout_ms,
            snapshot_threshold=snapshot_threshold,
            log_level=log_level,
            log_format=log_format,
            auto_promote_lag=auto_promote_lag,
        )
        seeds = prepare_start(settings, cluster_flag=cluster, join_flag=join)
        join_token = _join_token(join_token_file, seeds)
    except SettingsError as exc:
        _fail(str(exc), EXIT_USAGE)
    configure_logging(level=log_level, fmt=log_format, node_id=node_id)
    try:
        event_loop.run(_serve(settings, security, seeds, join_token))
    except event_loop.EventLoopChoiceError as exc:
        _fail(str(exc), EXIT_USAGE)
    except (SettingsError, StorageError, OSError) as exc:
        _fail(f"node {node_id} cannot start: {exc}", EXIT_STARTUP_FAILED)


def _join_token(path: Path | None, seeds: list[str]) -> str | None:
    if path is None:
        return None
    if not seeds:
        raise SettingsError("--join-token-file is only used with --join")
    try:
        return read_token_file(path)
    except ValueError as exc:
        raise SettingsError(f"--join-token-file: {exc}") from None


async def _serve(
    settings: Settings,
    security: SecurityOptions | None = None,
    join: list[str] | None = None,
    join_token: str | None = None,
) -> None:
    if join:
        await join_cluster(settings, join, security=security, token=join_token)
    server = NodeServer(settings, security=security)
    loop = asyncio.get_running_loop()
    log.info("event loop: %s", event_loop.loop_name())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except BaseException:
        await server.stop()
        raise
    stopping = asyncio.create_task(stop.wait())
    failed = asyncio.create_task(server.driver.wait_failed())
    await asyncio.wait([stopping, failed], return_when=asyncio.FIRST_COMPLETED)
    if failed.done() and not stop.is_set():
        # A dead driver must not leave a process that looks alive: stop, and exit non-zero so a
        # supervisor restarts the node (it recovers from its data directory).
        log.critical("the Raft driver failed: %s; stopping the node", failed.result())
        await server.stop()
        raise SystemExit(EXIT_STARTUP_FAILED)
    failed.cancel()
    await server.stop()


@main.command()
@click.option("--nodes", type=click.IntRange(min=1, max=9), default=3, show_default=True)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=Path("./raftkv-data"), show_default=True
)
@click.option("--base-port", type=click.IntRange(min=1, max=65000), default=7001, show_default=True)
@click.option(
    "--metrics-base-port", type=click.IntRange(min=1, max=65000), default=9101, show_default=True
)
def up(nodes: int, data_dir: Path, base_port: int, metrics_base_port: int) -> None:
    """Run a local cluster of NODES processes on loopback in the foreground (Ctrl-C stops it)."""
    sys.exit(
        run_up(
            nodes=nodes, data_dir=data_dir, base_port=base_port, metrics_base_port=metrics_base_port
        )
    )


@main.command()
@click.option(
    "--backup",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    envvar="RAFTKV_BACKUP",
    help="A file written by `raftkv-cli snapshot save`.",
)
@click.option("--id", "node_id", type=click.IntRange(min=1), required=True, envvar="RAFTKV_ID")
@click.option(
    "--cluster",
    required=True,
    envvar="RAFTKV_CLUSTER",
    help="ID=HOST:PORT,... of the NEW cluster's members.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    required=True,
    envvar="RAFTKV_DATA_DIR",
    help="A new, empty data directory for this node.",
)
def restore(backup: Path, node_id: int, cluster: str, data_dir: Path) -> None:
    """Seed a new node's data directory from a backup; then `raftkv serve` it (run this on every
    member of the new cluster with the same --cluster)."""
    try:
        members = parse_cluster(cluster)
        if NodeId(node_id) not in members:
            raise SettingsError(f"--id {node_id} is not in --cluster (members: {sorted(members)})")
    except SettingsError as exc:
        _fail(str(exc), EXIT_USAGE)
    configure_logging(level="warning", fmt="text", node_id=node_id)
    try:
        meta = restore_backup(
            backup,
            data_dir,
            cluster_id=cluster_id_for(members),
            node_id=node_id,
            membership=membership_of(members),
        )
    except (StorageError, OSError, ValueError) as exc:
        _fail(f"cannot restore {backup} into {data_dir}: {exc}", EXIT_STARTUP_FAILED)
    click.echo(f"restored {backup} into {data_dir} at index {meta.index} (term {meta.term})")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"raftkv: {message}", err=True)
    sys.exit(code)


main.add_command(health)

main.add_command(certs)

if __name__ == "__main__":
    main()
