"""Storage benchmarks: durable appends vs raw plyvel, snapshot streaming and restore.

    python bench/bench_storage.py [--keys N] [--seconds S] [--dir DIR] [--out bench/STORAGE.md]

Appends: RaftLogStore.save(entries=batch, hard_state=...) -- one durable batch per call (a
raft.journal record and its fdatasync, then the WriteBatch without sync; a batch of 32 KiB or
more on an empty journal: WriteBatch(sync=True); raftkv.storage.journal),
batches of 1, 16 and 256 entries of 256 B -- against raw plyvel WriteBatch(sync=True) with the same
puts, on the same disk in the same run. The two alternate in rounds of equal write counts and the
median round is reported, so drift in the disk's fsync time hits both alike. Target ratio >= 0.8.

Snapshots: a state DB filled through KVStateMachine.apply with --keys keys (16 B keys, 100 B
values) is streamed with snapshot_chunks (1 MiB chunks) and installed into a second node's state
with SnapshotInstaller (write, verify, fsync, atomic swap).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import plyvel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftkv.core.membership import membership_of
from raftkv.core.types import Entry, HardState, Index, NodeId, Term
from raftkv.kv import KVStateMachine, SnapshotInstaller, snapshot_chunks
from raftkv.pb import kv_pb2
from raftkv.storage import RaftLogStore, codec

M0 = membership_of([1, 2, 3])
ENTRY_BYTES = 256


def bench_appends(root: Path, batch: int, seconds: float, rounds: int) -> tuple[float, float]:
    """(raw entries/s, store entries/s), medians over ``rounds`` interleaved rounds.

    The store's Entry objects are built before each timed round: the driver receives them from
    the core, so building them is not storage's cost. Both sides encode their keys in the loop.
    """
    raw_dir, store_dir = root / f"raw{batch}", root / f"store{batch}"
    raw = plyvel.DB(str(raw_dir), create_if_missing=True)
    store = RaftLogStore.open(store_dir, initial_membership=M0)
    payload = os.urandom(ENTRY_BYTES)
    next_raw, next_store = 1, 1

    def raw_round(steps: int) -> float:
        nonlocal next_raw
        start = time.perf_counter()
        for _ in range(steps):
            with raw.write_batch(sync=True) as wb:
                for i in range(next_raw, next_raw + batch):
                    wb.put(codec.entry_key(i), payload)
            next_raw += batch
        return steps * batch / (time.perf_counter() - start)

    def store_round(steps: int) -> float:
        nonlocal next_store
        batches = []
        for _ in range(steps):
            lo = next_store
            batches.append(
                [Entry(term=Term(1), index=Index(i), data=payload) for i in range(lo, lo + batch)]
            )
            next_store += batch
        start = time.perf_counter()
        for entries in batches:
            store.save(
                entries=entries,
                hard_state=HardState(
                    term=Term(1), vote=NodeId(1), commit=Index(entries[0].index - 1)
                ),
            )
        return steps * batch / (time.perf_counter() - start)

    # Calibrate: how many synced writes fit in one round's share of the time.
    probe = raw_round(5)
    steps = max(5, int(seconds / rounds * probe / batch))
    raw_rates, store_rates = [], []
    for _ in range(rounds):
        raw_rates.append(raw_round(steps))
        store_rates.append(store_round(steps))
    raw.close()
    store.close()
    shutil.rmtree(raw_dir)
    shutil.rmtree(store_dir)
    return statistics.median(raw_rates), statistics.median(store_rates)


def bench_open(root: Path, count: int) -> float:
    """Seconds to open (and fully verify) a raft log of ``count`` entries of 256 B."""
    path = root / "open"
    store = RaftLogStore.open(path, initial_membership=M0)
    payload = os.urandom(ENTRY_BYTES)
    for lo in range(1, count + 1, 10_000):
        hi = min(count + 1, lo + 10_000)
        store.save(
            entries=[Entry(term=Term(1), index=Index(i), data=payload) for i in range(lo, hi)]
        )
    store.close()
    start = time.perf_counter()
    store = RaftLogStore.open(path)
    elapsed = time.perf_counter() - start
    assert store.last_index() == count
    store.close()
    shutil.rmtree(path)
    return elapsed


def fill_state(path: Path, keys: int) -> KVStateMachine:
    sm = KVStateMachine.open(path, initial_membership=M0)
    value = b"v" * 100
    batch = 10_000
    for lo in range(0, keys, batch):
        entries = [
            Entry(
                term=Term(1),
                index=Index(i + 1),
                data=kv_pb2.Command(
                    put=kv_pb2.PutOp(key=b"key-%012d" % i, value=value)
                ).SerializeToString(),
            )
            for i in range(lo, min(keys, lo + batch))
        ]
        sm.apply(entries)
    sm.sync()
    return sm


def bench_snapshot(root: Path, keys: int) -> dict[str, float]:
    t0 = time.perf_counter()
    leader = fill_state(root / "leader" / "state", keys)
    fill_s = time.perf_counter() - t0
    follower = KVStateMachine.open(root / "follower" / "state", initial_membership=M0)
    t0, c0 = time.perf_counter(), time.process_time()
    total = sum(len(c.data) for c in snapshot_chunks(leader))
    stream_s, stream_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    installer = SnapshotInstaller(follower)
    for chunk in snapshot_chunks(leader):
        installer.add(chunk)
    meta = installer.commit()
    install_s, install_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert meta.index == keys and follower.applied_index() == keys
    leader.close()
    follower.close()
    return {
        "fill_s": fill_s,
        "stream_mb": total / 1e6,
        "stream_s": stream_s,
        "stream_cpu": stream_cpu,
        "install_s": install_s,
        "install_cpu": install_cpu,
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, plyvel {plyvel.__version__} "
        f"(LevelDB {plyvel.__leveldb_version__})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="per batch size, per side")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--log-entries", type=int, default=200_000, help="for the open test")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "STORAGE.md")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="raftkv-bench-", dir=args.dir))
    try:
        rows = []
        for batch in (1, 16, 256):
            raw, store = bench_appends(root, batch, args.seconds, args.rounds)
            rows.append((batch, raw, store))
            print(f"batch {batch}: raw {raw:,.0f}/s store {store:,.0f}/s ratio {store / raw:.2f}")
        open_s = bench_open(root, args.log_entries)
        print(f"open {args.log_entries} entries: {open_s:.2f} s")
        snap = bench_snapshot(root, args.keys)
        print(snap)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    command = "python bench/bench_storage.py " + " ".join(sys.argv[1:])
    lines = [
        "# Storage benchmarks",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"- machine: {machine()}",
        f"- disk: the filesystem holding {args.dir or tempfile.gettempdir()}",
        f"- load average (1 min) at start / end: {load_start:.1f} / {os.getloadavg()[0]:.1f} "
        "(other work on the box slows both sides alike; absolute rates drift with it)",
        f"- command: `{command.strip()}`",
        "",
        "## Durable appends (entries of 256 B; raw: one WriteBatch(sync=True) per batch; "
        "RaftLogStore: one journal record + fdatasync, then the WriteBatch without sync; "
        "32 KiB or more on an empty journal: WriteBatch(sync=True))",
        "",
        "| batch | raw plyvel entries/s | RaftLogStore.save entries/s | ratio (target >= 0.8) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for batch, raw, store in rows:
        lines.append(f"| {batch} | {raw:,.0f} | {store:,.0f} | {store / raw:.2f} |")
    mb, s = snap["stream_mb"], snap["stream_s"]
    lines += [
        "",
        f"Opening a log of {args.log_entries:,} entries (verifying every checksum): "
        f"{open_s:.2f} s ({args.log_entries / open_s:,.0f} entries/s).",
    ]
    lines += [
        "",
        f"## Snapshots ({args.keys:,} keys of 16 B with 100 B values)",
        "",
        "| step | wall time | rate | CPU time |",
        "| --- | ---: | ---: | ---: |",
        f"| fill through KVStateMachine.apply (batches of 10,000) | {snap['fill_s']:.1f} s | "
        f"{args.keys / snap['fill_s']:,.0f} commands/s | |",
        f"| stream (snapshot_chunks, 1 MiB chunks) | {s:.1f} s | {mb / s:,.1f} MB/s "
        f"({mb:,.0f} MB) | {snap['stream_cpu']:.1f} s |",
        f"| restore: stream + install (SnapshotInstaller: parse, write, verify, fsync, swap) | "
        f"{snap['install_s']:.1f} s | {mb / snap['install_s']:,.1f} MB/s | "
        f"{snap['install_cpu']:.1f} s |",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
