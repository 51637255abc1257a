"""``raftkv-cli bench``: offer load to a raftkv cluster and report throughput and latency.

Rules:
- Parse, build a ``raftkv.loadgen.LoadSpec``, run it, print. The generator lives in
  ``raftkv.loadgen``; nothing about load generation is decided here.
- Endpoints: ``--endpoints``, else the group's ``--endpoints`` (when registered under
  ``raftkv-cli``), else $RAFTKV_ENDPOINTS, else the three local defaults.
- Progress lines go to stderr once a second; the result goes to stdout (``-w json`` for programs).
- Every run is bounded by ``--duration`` and ``--max-ops``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from raftkv.cli import event_loop
from raftkv.loadgen import (
    ClientTarget,
    LoadResult,
    LoadSpec,
    RawTarget,
    Target,
    Workload,
    describe_result,
    run_load,
    write_png,
)

DEFAULT_ENDPOINTS = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"


def _endpoints(ctx: click.Context, given: str | None) -> list[str]:
    text = given or getattr(ctx.find_root().obj, "endpoints", None)
    text = text or os.environ.get("RAFTKV_ENDPOINTS") or DEFAULT_ENDPOINTS
    return [e.strip() for e in str(text).split(",") if e.strip()]


def _write_out(ctx: click.Context, given: str | None) -> str:
    return given or str(getattr(ctx.find_root().obj, "write_out", None) or "plain")


async def _run(spec: LoadSpec, target: Target, quiet: bool) -> LoadResult:
    def progress(line: str) -> None:
        click.echo(line, err=True)

    await target.start()
    try:
        return await run_load(spec, target, progress=None if quiet else progress)
    finally:
        await target.close()


@click.command("bench")
@click.option("--endpoints", default=None, help="HOST:PORT,... (default: the CLI's endpoints).")
@click.option("--clients", type=click.IntRange(1, 4096), default=16, show_default=True,
              help="Concurrent operations in flight.")
@click.option("--duration", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds to run (warm-up included).")
@click.option("--warmup", type=click.FloatRange(0, 3600), default=1.0, show_default=True,
              help="Seconds at the start not counted in the results.")
@click.option("--max-ops", type=click.IntRange(1, 100_000_000), default=10_000_000,
              show_default=True, help="Stop after this many operations.")
@click.option("--workload", type=click.Choice([w.value for w in Workload]), default="write",
              show_default=True,
              help="write: puts; read: linearizable gets; stale: stale gets; mixed: both.")
@click.option("--read-fraction", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Share of reads in the mixed workload.")
@click.option("--value-size", type=click.IntRange(0, 1 << 20), default=256, show_default=True,
              help="Bytes per value.")
@click.option("--keys", type=click.IntRange(1, 100_000_000), default=10_000, show_default=True,
              help="Size of the key space (keys bench/000000000000 ...).")
@click.option("--prefill/--no-prefill", default=False, show_default=True,
              help="Before a read or mixed run, write every key once (not timed).")
@click.option("--target", "target_kind", type=click.Choice(["client", "raw"]), default="client",
              show_default=True,
              help="client: the raftkv client library; raw: one gRPC call per op to the leader.")
@click.option("--timeout", type=click.FloatRange(0.01, 600), default=5.0, show_default=True,
              help="Deadline of each operation, seconds.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also plot throughput and latency per second (needs matplotlib).")
@click.option("-w", "--write-out", type=click.Choice(["plain", "json"]), default=None,
              help="Output format (default: the CLI's, else plain).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@click.pass_context
def bench(ctx: click.Context, *, endpoints: str | None, clients: int, duration: float,
          warmup: float, max_ops: int, workload: str, read_fraction: float, value_size: int,
          keys: int, prefill: bool, target_kind: str, timeout: float, png: Path | None,
          write_out: str | None, quiet: bool) -> None:
    """Offer load to the cluster; print throughput, latency percentiles and errors by code."""
    try:
        spec = LoadSpec(
            workload=Workload(workload), clients=clients, duration_s=duration,
            warmup_s=warmup, max_ops=max_ops, value_size_bytes=value_size, key_space=keys,
            read_fraction=read_fraction, op_timeout_s=timeout, prefill=prefill,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    addresses = _endpoints(ctx, endpoints)
    target: Target = (
        ClientTarget(addresses, timeout_s=timeout) if target_kind == "client"
        else RawTarget(addresses)
    )
    try:
        result = event_loop.run(_run(spec, target, quiet))
    except event_loop.EventLoopChoiceError as error:
        raise click.UsageError(str(error)) from error
    if _write_out(ctx, write_out) == "json":
        click.echo(json.dumps(result.to_json()))
    else:
        click.echo(describe_result(result))
    if png is not None and not write_png(result, png):
        click.echo("bench: --png needs matplotlib (pip install matplotlib)", err=True)
    if result.ops == 0:
        sys.exit(3)
