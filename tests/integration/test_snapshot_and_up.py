"""InstallSnapshot between real processes, and ``raftkv up`` end to end."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from raftkv.pb import kv_pb2, kv_pb2_grpc

from .harness import Cluster, env, wait_for


def test_node_down_during_many_writes_rejoins_through_install_snapshot(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, extra_args=("--snapshot-threshold", "200"))
    cluster.start()
    try:
        leader = cluster.wait_ready()
        down = next(n for n in cluster.nodes if n is not leader)
        down.kill()
        # Issue 4: 50,000 writes while the node is down. KV.Batch carries 250 puts a call (each
        # its own operation and log entry), so the test spends its time in Raft, not in RPCs.
        total, per_call = 50_000, 250

        def write_batch(start: int) -> None:
            ops = [
                kv_pb2.BatchOp(put=kv_pb2.PutRequest(key=b"s%05d" % i, value=b"v%d" % i))
                for i in range(start, start + per_call)
            ]
            response = leader.kv.Batch(kv_pb2.BatchRequest(ops=ops), timeout=60)
            failed = [r.error for r in response.results if r.WhichOneof("result") != "put"]
            assert not failed, failed[:3]

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write_batch, range(0, total, per_call)))
        assert leader.status().first_index > 40_000  # the log was compacted
        down.start()
        wait_for(lambda: down.get(b"s49999", stale=True) == b"v49999", 60, "catch-up")
        assert down.get(b"s00000") == b"v0"
        assert down.get(b"s25000", stale=True) == b"v25000"
        assert "received snapshot" in down.log_path.read_text()
    finally:
        cluster.stop()


def _consecutive_free_ports(n: int) -> int:
    for _ in range(50):
        base = random.randint(20000, 60000)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port range")


def _up(data_dir: Path, base: int, metrics: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "raftkv.cli.server_main",
            "up",
            "--nodes",
            "3",
            "--data-dir",
            str(data_dir),
            "--base-port",
            str(base),
            "--metrics-base-port",
            str(metrics),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def _wait_up(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops the cluster" in line:
            return "".join(lines)
    raise AssertionError(
        f"raftkv up ended early: {''.join(lines)} {proc.stderr and proc.stderr.read()}"
    )


def test_raftkv_up_starts_serves_stops_and_comes_back(tmp_path: Path) -> None:
    base, metrics = _consecutive_free_ports(3), _consecutive_free_ports(3)
    data_dir = tmp_path / "raftkv-data"
    proc = _up(data_dir, base, metrics)
    try:
        banner = _wait_up(proc)
        assert f"127.0.0.1:{base}" in banner and "raftkv-cli put" in banner
        with grpc.insecure_channel(f"127.0.0.1:{base + 1}") as channel:
            kv = kv_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
            kv.Put(kv_pb2.PutRequest(key=b"persisted", value=b"yes"), timeout=10)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as r:
            exported = r.read().decode()
        for name in (
            "raftkv_term",
            "raftkv_role",
            "raftkv_commit_index",
            "raftkv_client_requests_total",
            "raftkv_elections_total",
            "raftkv_append_entries_per_message_bucket",
            "raftkv_votes_total",
            "raftkv_fsync_duration_seconds_bucket",
        ):
            assert name in exported, name
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        proc = _up(data_dir, base, metrics)
        _wait_up(proc)
        with grpc.insecure_channel(f"127.0.0.1:{base + 2}") as channel:
            kv = kv_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
            got = kv.Get(kv_pb2.GetRequest(key=b"persisted"), timeout=10)
        assert got.found and got.value == b"yes"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:  # stop the nodes through the supervisor, never orphan them
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_backup_stream_restores_into_a_new_cluster(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    cluster = Cluster(tmp_path / "old")
    cluster.start()
    try:
        leader = cluster.wait_ready()
        for i in range(50):
            leader.put(b"b%02d" % i, b"%d" % i)
        backup = tmp_path / "backup.rkv"
        with backup.open("wb") as out:
            chunks = cluster.nodes[0].admin.Snapshot(kv_pb2.BackupRequest(), timeout=30)
            first = next(chunks)
            assert first.meta.index > 0
            for chunk in chunks:
                out.write(chunk.data)
    finally:
        cluster.stop()
    new = Cluster(tmp_path / "new", n=1)
    node = new.nodes[0]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftkv.cli.server_main",
            "restore",
            "--backup",
            str(backup),
            "--id",
            "1",
            "--cluster",
            f"1={node.address}",
            "--data-dir",
            str(node.data_dir),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    new.start()
    try:
        new.wait_ready()
        assert node.get(b"b49") == b"49"
        node.put(b"after", b"restore")
        assert node.get(b"after") == b"restore"
    finally:
        new.stop()
