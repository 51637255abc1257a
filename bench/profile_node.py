"""Profile a loaded raftkv node with py-spy: ``python -m bench.profile_node [--seconds 20]``.

Starts a 3-node cluster, offers a load (puts or linearizable reads through the client library),
samples the leader (and one follower) with ``py-spy record --format raw`` and prints the top
functions by own time and by inclusive time. py-spy comes from PyPI (``pip install py-spy``);
it needs ptrace rights over the node (root, or the same user with ptrace allowed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import procs
from bench.promtext import per_op, scrape
from bench.raftkv_cluster import RaftkvCluster
from raftkv.loadgen import LoadSpec, Target, Workload, describe_result, run_load

TOP = 25


COMPONENTS = (
    ("grpc", ("cygrpc", "grpc/")),
    ("protobuf", ("_message.abi3", "google/protobuf", "upb_")),
    ("prometheus_client", ("prometheus_client",)),
    ("leveldb", ("plyvel", "leveldb", "libleveldb")),
    ("asyncio", ("asyncio", "_asynciomodule", "selectors.py")),
    ("threads/executor", ("concurrent/futures", "threading.py")),
    ("libc (syscalls, locks)", ("libc.so",)),
)


def component_of(frame: str) -> str:
    """The layer a frame belongs to: raftkv/<layer>, grpc, protobuf, asyncio, ..."""
    if "raftkv/" in frame:
        layer = frame.split("raftkv/", 1)[1].split("/", 1)[0].split(".py", 1)[0]
        if layer != "storage" or "leveldb.py" not in frame:
            return f"raftkv/{layer}"
    for name, needles in COMPONENTS:
        if any(n in frame for n in needles):
            return name
    return "other"


def summarize(raw: Path, top: int = TOP) -> str:
    """Own and inclusive sample shares per function from py-spy's collapsed-stack output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        components[component_of(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "(no samples)"
    lines = [f"{total} samples", "", "own time by component (the frame that was running):"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in components.most_common()]
    lines += ["", "own time:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines += ["", "inclusive time, raftkv functions:"]
    ours = [(f, c) for f, c in inclusive.most_common() if "raftkv/" in f][:top]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in ours]
    return "\n".join(lines)


class _Counting:
    """A target wrapper counting successful operations."""

    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.name = inner.name
        self.done = 0

    async def start(self) -> None:
        await self.inner.start()

    async def put(self, key: bytes, value: bytes, timeout_s: float) -> None:
        await self.inner.put(key, value, timeout_s)
        self.done += 1

    async def get(self, key: bytes, stale: bool, timeout_s: float) -> None:
        await self.inner.get(key, stale, timeout_s)
        self.done += 1

    async def close(self) -> None:
        await self.inner.close()


async def profile(args: argparse.Namespace, root: Path) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cluster = RaftkvCluster(root / "cluster", metrics=True)
    cluster.start()
    try:
        leader = await cluster.wait_leader()
        follower = next(e for e in cluster.endpoints if e != leader)
        target = _Counting(
            cluster.client_target() if args.target == "client" else cluster.target())
        await target.start()
        spec = LoadSpec(workload=Workload(args.workload), clients=args.clients,
                        duration_s=args.seconds + 4, warmup_s=1.0, key_space=1000)
        load = asyncio.get_running_loop().create_task(run_load(spec, target))
        await asyncio.sleep(2.0)
        pids = {"leader": cluster.pid_of(leader), "follower": cluster.pid_of(follower),
                "load generator": os.getpid()}
        urls = {"leader": cluster.metrics_url(leader), "follower": cluster.metrics_url(follower)}
        scraped = {role: scrape(url) for role, url in urls.items() if url}
        done_before = target.done
        cpu_before = {role: procs.cpu_s(pid) for role, pid in pids.items()}
        wall_before = time.monotonic()
        # --native needs the process paused per sample; without it sample without pausing.
        gil = (["--gil"] if args.gil else []) + (["--native"] if args.native else
                                                 ["--nonblocking"])
        samplers = {
            role: await asyncio.create_subprocess_exec(
                py_spy, "record", "--pid", str(pids[role]), "--duration",
                str(int(args.seconds)), "--rate", "200", "--format", "raw",
                *gil, "--output", str(args.out_dir / f"{role}-{args.workload}.txt"),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for role in ("leader", "follower")
        }
        for sampler in samplers.values():
            await asyncio.wait_for(sampler.wait(), args.seconds + 30)
        wall = time.monotonic() - wall_before
        cpu = {role: (procs.cpu_s(pid) - cpu_before[role]) / wall for role, pid in pids.items()}
        ops = target.done - done_before
        counts = {role: per_op(scraped[role], scrape(str(urls[role])), ops) for role in scraped}
        result = await load
        await target.close()
        print(describe_result(result))
        print(f"machine load average: {procs.machine_load()}")
        print("CPU used while sampled (1.0 = one full core): " +
              ", ".join(f"{role} {share:.2f}" for role, share in cpu.items()))
        print(f"CPU ms per client operation ({ops} ops while sampled): " +
              ", ".join(f"{role} {1000 * share * wall / max(1, ops):.2f}"
                        for role, share in cpu.items()))
        for role, per in counts.items():
            print(f"{role}, per client operation: " +
                  ", ".join(f"{k.removeprefix('raftkv_')} {v}" for k, v in per.items()))
        for role in samplers:
            raw = args.out_dir / f"{role}-{args.workload}.txt"
            kind = "samples holding the GIL" if args.gil else "wall-clock samples"
            print(f"\n== {role} ({args.workload}, {args.clients} clients, {args.target}; {kind})")
            print(summarize(raw) if raw.exists() else "(py-spy wrote nothing)")
    finally:
        cluster.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--workload", choices=["write", "read"], default="write")
    p.add_argument("--target", choices=["client", "raw"], default="client")
    p.add_argument("--gil", action=argparse.BooleanOptionalAction, default=True,
                   help="sample only threads holding the GIL (CPU attribution; default)")
    p.add_argument("--native", action="store_true",
                   help="also sample native frames (grpc's Cython/C core, LevelDB)")
    p.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "raftkv-profile")
    args = p.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    procs.install_cleanup()
    with tempfile.TemporaryDirectory(prefix="raftkv-profile-") as tmp:
        try:
            asyncio.run(profile(args, Path(tmp)))
        finally:
            procs.kill_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
