"""One operation at a time: ``python -m bench.lone_op [--ops 500] [--nodes 3]``.

Starts a fresh raftkv cluster on loopback (fsync on, default timings), then times sequential raw
gRPC calls to the leader, one kind after another: Status (the bare unary round trip), a stale
get, a linearizable get and a put. For each it prints p50/p90 latency and the CPU each node
spent per call (from /proc). This is the one-writer case of issue 10 taken apart: what a lone
put costs beyond a bare round trip, and on which node. Nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from google.protobuf.message import Message

from bench import procs
from bench.raftkv_cluster import RaftkvCluster
from raftkv.loadgen.targets import RawTarget
from raftkv.pb import kv_pb2

IDLE_S = 3.0
CALL_TIMEOUT_S = 2.0


def _cpu(cluster: RaftkvCluster) -> dict[str, float]:
    return {e: procs.cpu_s(cluster.pid_of(e)) for e in cluster.endpoints}


async def _time_calls(
    target: RawTarget, cluster: RaftkvCluster, *, name: str, path: str,
    request: Callable[[int], Message], ops: int,
) -> str:
    before = _cpu(cluster)
    latencies = []
    for i in range(ops):
        started = time.perf_counter()
        await target.unary(target.leader, path, request(i), CALL_TIMEOUT_S)
        latencies.append((time.perf_counter() - started) * 1000)
    after = _cpu(cluster)
    latencies.sort()
    per_node = ", ".join(
        f"{'leader' if e == target.leader else e.rsplit(':', 1)[1]} "
        f"{(after[e] - before[e]) / ops * 1000:.2f}"
        for e in cluster.endpoints
    )
    return (f"{name:<10} p50 {latencies[ops // 2]:5.2f} ms  p90 {latencies[ops * 9 // 10]:5.2f} ms"
            f"   CPU ms per call: {per_node}")


async def main(ops: int, nodes: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="raftkv-lone-op-"))
    cluster = RaftkvCluster(root, size=nodes)
    cluster.start()
    try:
        await cluster.wait_leader()
        target = cluster.target()
        await target.start()
        before = _cpu(cluster)
        await asyncio.sleep(IDLE_S)
        after = _cpu(cluster)
        idle = ", ".join(f"{(after[e] - before[e]) / IDLE_S * 100:.1f}%" for e in cluster.endpoints)
        print(f"idle CPU per node: {idle}")
        value = b"v" * 256
        kinds: list[tuple[str, str, Callable[[int], Message]]] = [
            ("status", target.status_path, lambda i: kv_pb2.StatusRequest()),
            ("stale get", target.get_path,
             lambda i: kv_pb2.GetRequest(key=b"k", consistency=kv_pb2.CONSISTENCY_STALE)),
            ("lin get", target.get_path, lambda i: kv_pb2.GetRequest(key=b"k")),
            ("put", target.put_path, lambda i: kv_pb2.PutRequest(key=b"k%d" % i, value=value)),
        ]
        for name, path, request in kinds:
            line = await _time_calls(
                target, cluster, name=name, path=path, request=request, ops=ops
            )
            print(line, flush=True)
        await target.close()
    finally:
        cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=500, help="calls of each kind (sequential)")
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.ops, args.nodes))
