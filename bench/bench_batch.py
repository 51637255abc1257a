"""The server's cost per operation inside a KV.Batch: puts and linearizable gets, by batch size.

Issue 10: a client that coalesces operations sends KV.Batch RPCs; this measures what the server
path alone does with them. One 3-node cluster (fsync on, as always); a few concurrent senders
send KV.Batch RPCs of N operations straight to the leader for a short fixed time per case.
Reports ops/s and CPU milliseconds per operation of each node (read from /proc), leader first.

    python -m bench.bench_batch [--seconds 4] [--senders 4] [--sizes 1,16,64,256]
        [--kinds put,get] [--node leader|follower]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import grpc
import grpc.aio

from bench import procs
from bench.promtext import scrape
from bench.raftkv_cluster import RaftkvCluster
from raftkv.pb import kv_pb2, kv_pb2_grpc

KEYS = 1024
VALUE = b"v" * 64
TIMEOUT_S = 10.0
_APPLIES = "raftkv_commit_apply_duration_seconds_count"
"""Apply batches (one storage-thread hop each) on the leader."""
_READ_INDEXES = "raftkv_read_index_wait_seconds_count"
"""Driver.read_index calls on the leader (a batch's linearizable gets should share one)."""


def _batch(kind: str, size: int, start: int, client_id: int, seq: int) -> kv_pb2.BatchRequest:
    ops = []
    for i in range(size):
        key = b"k%06d" % ((start + i) % KEYS)
        if kind == "put":
            session = kv_pb2.Session(client_id=client_id, sequence=seq + i)
            op = kv_pb2.BatchOp(put=kv_pb2.PutRequest(key=key, value=VALUE, session=session))
        else:
            op = kv_pb2.BatchOp(get=kv_pb2.GetRequest(key=key))
        ops.append(op)
    return kv_pb2.BatchRequest(ops=ops)


async def _sender(stub: kv_pb2_grpc.KVStub, kind: str, size: int, *, until: float,
                  sender: int, counts: list[int]) -> None:
    # Each sender is its own session and keeps at most one batch in flight, so its sequences
    # are applied in order (no session window concerns).
    client_id = (os.getpid() << 16) + (int(time.time()) << 4) + sender + 1
    seq = 1
    start = sender * 97
    while time.monotonic() < until:
        request = _batch(kind, size, start, client_id, seq)
        response = await stub.Batch(request, timeout=TIMEOUT_S)
        for result in response.results:
            if result.WhichOneof("result") == "error":
                counts[1] += 1
                if counts[1] == 1:
                    print(f"first error: code {result.error.code}: {result.error.message}")
            else:
                counts[0] += 1
        seq += size
        start += size


async def _case(cluster: RaftkvCluster, leader: str, kind: str, size: int, *, seconds: float,
                senders: int, target: str = "") -> dict[str, float]:
    channel = grpc.aio.insecure_channel(target or leader)
    stub = kv_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
    followers = [e for e in cluster.endpoints if e != leader]
    if target in followers:  # the follower called first
        followers.remove(target)
        followers.insert(0, target)
    order = [leader, *followers]
    pids = [cluster.pid_of(e) for e in order]
    counts = [0, 0]
    url = cluster.metrics_url(leader)
    assert url is not None
    series_before = await asyncio.to_thread(scrape, url)
    try:
        cpu_before = [procs.cpu_s(p) for p in pids]
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            *(_sender(stub, kind, size, until=until, sender=s, counts=counts)
              for s in range(senders))
        )
        elapsed = time.monotonic() - started
        cpu_after = [procs.cpu_s(p) for p in pids]
    finally:
        await channel.close()
    series_after = await asyncio.to_thread(scrape, url)
    ops = max(1, counts[0])
    result = {"ops_s": counts[0] / elapsed, "errors": float(counts[1])}
    for name, series in (("applies_s", _APPLIES), ("reads_op", _READ_INDEXES)):
        grown = series_after.get(series, 0.0) - series_before.get(series, 0.0)
        result[name] = grown / elapsed if name.endswith("_s") else grown / ops
    for n, (b, a) in enumerate(zip(cpu_before, cpu_after, strict=True)):
        result[f"cpu{n}"] = (a - b) * 1000 / ops
    return result


async def _main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory(prefix="raftkv-bench-batch-") as tmp:
        cluster = RaftkvCluster(Path(tmp), metrics=True)
        cluster.start()
        try:
            leader = await cluster.wait_leader()
            target = leader if args.node == "leader" else next(
                e for e in cluster.endpoints if e != leader)
            # Preload every key so the gets read something.
            channel = grpc.aio.insecure_channel(leader)
            stub = kv_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
            for first in range(0, KEYS, 256):
                await stub.Batch(_batch("put", 256, first, 0, 0), timeout=TIMEOUT_S)
            await channel.close()
            print(f"load average {procs.machine_load()}")
            print(f"{args.senders} senders to the {args.node}, {args.seconds:g} s per case; CPU "
                  "ms per op per node (leader, follower, follower; with --node follower the "
                  "first follower is the one called)")
            print("applies/s: the leader's apply batches per second; ri/op: its Driver.read_index "
                  "calls per operation")
            print(f"{'kind':<5} {'batch':>5} {'ops/s':>9} {'leader':>8} {'foll.1':>8} "
                  f"{'foll.2':>8} {'applies/s':>9} {'ri/op':>7} {'errors':>6}")
            for kind in kinds:
                for size in sizes:
                    r = await _case(cluster, leader, kind, size, seconds=args.seconds,
                                      senders=args.senders, target=target)
                    print(f"{kind:<5} {size:>5} {r['ops_s']:>9.0f} {r['cpu0']:>8.3f} "
                          f"{r['cpu1']:>8.3f} {r['cpu2']:>8.3f} {r['applies_s']:>9.0f} "
                          f"{r['reads_op']:>7.3f} {r['errors']:>6.0f}", flush=True)
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--sizes", default="1,16,64,256")
    parser.add_argument("--kinds", default="put,get")
    parser.add_argument("--node", choices=("leader", "follower"), default="leader",
                        help="send the batches to the leader or to a follower")
    args = parser.parse_args()
    procs.install_cleanup()
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
