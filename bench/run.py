"""One command for the whole suite: ``python -m bench.run [--quick]`` writes bench/RESULTS.md.

Steps (each can be skipped): core micro-benchmarks (bench/bench_core.py, if present); for each
cluster size, every scenario side by side on raftkv (client library and raw gRPC) and etcd; a
60 s full-load soak on raftkv checking that the leader never changes; failover (kill -9 of the
leader, median of N trials) for raftkv's defaults and etcd at 50/300 ms; memory (RSS idle and
while loading N keys of 256 B). Every process started is killed on exit, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from bench import procs
from bench.etcd import EtcdCluster
from bench.failover import failover
from bench.machine import describe_machine
from bench.memory import idle_cpu, idle_rss, loaded_rss
from bench.raftkv_cluster import RaftkvCluster
from bench.results_md import render
from bench.suite import SCENARIOS, log, measured_run, side_by_side
from raftkv.loadgen import LoadSpec, Workload

HERE = Path(__file__).resolve().parent
QUICK_SCENARIOS = ["put c=1", "put c=64", "read c=64", "mixed 90/10 c=64"]
CORE_TIMEOUT_S = 900.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a 1-2 minute smoke of every step")
    p.add_argument("--sizes", default=None, help="cluster sizes, e.g. 3,5 (full) or 3 (quick)")
    p.add_argument("--duration", type=float, default=None, help="seconds per run (10; quick 3)")
    p.add_argument("--warmup", type=float, default=None, help="seconds of warm-up (2; quick 0.5)")
    p.add_argument("--scenarios", default=None,
                   help="semicolon list of scenario names (default: all; quick: " +
                   "; ".join(QUICK_SCENARIOS) + ")")
    p.add_argument("--rounds", type=int, default=1, help="repeat the scenario list; median kept")
    p.add_argument("--soak", type=float, default=None, help="full-load soak seconds (60; quick 0)")
    p.add_argument("--trials", type=int, default=None, help="failover trials (5; quick 1)")
    p.add_argument("--memory-keys", type=int, default=None, help="keys for memory (1e6; quick 2e3)")
    p.add_argument("--memory-limit", type=float, default=600.0, help="max seconds loading keys")
    p.add_argument("--skip", default="", help="comma list: core,cluster,soak,failover,memory")
    p.add_argument("--png-dir", type=Path, default=None, help="also write a PNG per run")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--json", type=Path, default=HERE / "results.json")
    args = p.parse_args(argv)
    q = args.quick
    args.sizes = [int(s) for s in (args.sizes or ("3" if q else "3,5")).split(",")]
    names = args.scenarios.split(";") if args.scenarios else (QUICK_SCENARIOS if q else None)
    known = dict(SCENARIOS)
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; known: {list(known)}")
    args.scenarios = [(n, known[n]) for n in names] if names else SCENARIOS
    args.duration = args.duration or (2.0 if q else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if q else 2.0)
    args.soak = args.soak if args.soak is not None else (0.0 if q else 60.0)
    args.trials = args.trials or (1 if q else 5)
    args.memory_keys = args.memory_keys or (1000 if q else 1_000_000)
    args.skip = {s for s in args.skip.split(",") if s}
    return args


def core_microbenchmarks(quick: bool) -> dict[str, Any]:
    script = HERE / "bench_core.py"
    if not script.exists():
        return {"skipped": "bench/bench_core.py not present"}
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    log("== core micro-benchmarks: " + " ".join(command[1:]))
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=CORE_TIMEOUT_S,
                             check=False)
    except subprocess.TimeoutExpired:
        return {"command": " ".join(command[1:]), "error": "timed out"}
    return {"command": "python " + " ".join(command[1:]).replace(str(HERE.parent) + "/", ""),
            "exit": out.returncode, "output": out.stdout[-8000:], "stderr": out.stderr[-2000:]}


async def cluster_step(args: argparse.Namespace, root: Path, size: int) -> dict[str, Any]:
    raftkv = RaftkvCluster(root / f"raftkv{size}", size=size)
    etcd = EtcdCluster(root / f"etcd{size}", size=size)
    try:
        raftkv.start()
        etcd.start()
        await raftkv.wait_leader()
        await etcd.wait_leader()
        rows = await side_by_side(
            [("raftkv-client", raftkv, raftkv.client_target),
             ("raftkv-raw", raftkv, raftkv.target),
             ("etcd", etcd, etcd.target)],
            duration_s=args.duration, warmup_s=args.warmup, rounds=args.rounds,
            scenarios=args.scenarios, png_dir=args.png_dir,
        )
        soak = None
        if size == args.sizes[0] and args.soak > 0 and "soak" not in args.skip:
            log(f"== soak: {args.soak:g}s of puts with 64 clients on raftkv-client")
            target = raftkv.client_target()
            await target.start()
            try:
                soak = await measured_run(raftkv, target, LoadSpec(
                    workload=Workload.WRITE, clients=64, duration_s=args.soak, warmup_s=1.0,
                    key_prefix="soak/"))
            finally:
                await target.close()
        return {"size": size, "rows": rows, "soak": soak}
    finally:
        raftkv.stop()
        etcd.stop()


async def failover_step(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    log(f"== failover: raftkv defaults, {args.trials} trial(s)")
    rk = await failover(RaftkvCluster, lambda c: c.client_target(),
                        root=root / "fo-raftkv", trials=args.trials)
    log(f"   raftkv: {rk}")
    log(f"== failover: etcd heartbeat 50 ms / election 300 ms, {args.trials} trial(s)")
    et = await failover(lambda r: EtcdCluster(r, fast_election=True), lambda c: c.target(),
                        root=root / "fo-etcd", trials=args.trials)
    log(f"   etcd: {et}")
    result = {"raftkv": rk, "etcd_50_300": et}
    if not args.quick:
        log(f"== failover: etcd defaults (heartbeat 100 ms / election 1000 ms), {args.trials}")
        result["etcd_defaults"] = await failover(
            EtcdCluster, lambda c: c.target(), root=root / "fo-etcd-defaults", trials=args.trials)
        log(f"   etcd defaults: {result['etcd_defaults']}")
    return result


async def memory_step(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    raftkv = RaftkvCluster(root / "mem-raftkv")
    etcd = EtcdCluster(root / "mem-etcd")
    try:
        raftkv.start()
        etcd.start()
        await raftkv.wait_leader()
        await etcd.wait_leader()
        result: dict[str, Any] = {"raftkv_idle_mb": await idle_rss(raftkv),
                                  "etcd_idle_mb": await idle_rss(etcd),
                                  "raftkv_idle_cpu": await idle_cpu(raftkv),
                                  "etcd_idle_cpu": await idle_cpu(etcd)}
        etcd.stop()
        log(f"== memory: idle {result}; loading {args.memory_keys:,} keys of 256 B "
            f"(at most {args.memory_limit:g}s)")
        target = raftkv.client_target()
        await target.start()
        try:
            result["raftkv_loaded"] = await loaded_rss(
                raftkv, target, keys=args.memory_keys, time_limit_s=args.memory_limit)
        finally:
            await target.close()
        log(f"   {result['raftkv_loaded']}")
        return result
    finally:
        raftkv.stop()
        etcd.stop()


async def guarded(name: str, step: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """A step's result, or {"error": ...} so one failing step does not lose the others."""
    try:
        return await step
    except Exception as error:
        log(f"!! {name} failed: {type(error).__name__}: {error}")
        return {"error": f"{type(error).__name__}: {error}"}


def save(args: argparse.Namespace, report: dict[str, Any], started: float) -> None:
    """Write RESULTS.md and results.json with what is measured so far."""
    report["load_average_end"] = procs.machine_load()
    report["elapsed_s"] = round(time.time() - started, 1)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    args.out.write_text(render(report))


async def main_async(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    started = time.time()
    report: dict[str, Any] = {"machine": describe_machine(),
                              "command": shlex.join(["python", "-m", "bench.run", *argv])}
    if "core" not in args.skip:
        report["core"] = core_microbenchmarks(args.quick)
        save(args, report, started)
    with tempfile.TemporaryDirectory(prefix="raftkv-bench-") as tmp:
        root = Path(tmp)
        if "cluster" not in args.skip:
            report["clusters"] = []
            for size in args.sizes:
                row = await guarded(f"{size} nodes", cluster_step(args, root, size))
                report["clusters"].append({"size": size, **row})
                save(args, report, started)
        if "failover" not in args.skip:
            report["failover"] = await guarded("failover", failover_step(args, root))
            save(args, report, started)
        if "memory" not in args.skip:
            report["memory"] = await guarded("memory", memory_step(args, root))
    save(args, report, started)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    procs.install_cleanup()
    try:
        report = asyncio.run(main_async(args, argv))
    finally:
        procs.kill_all()
    log(f"wrote {args.out} and {args.json}")
    failed = [k for k, v in report.items() if isinstance(v, dict) and "error" in v]
    failed += [f"{c['size']} nodes" for c in report.get("clusters", []) if "error" in c]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
