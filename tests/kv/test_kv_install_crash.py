"""Snapshot installs killed with SIGKILL at random moments: the state is always one whole snapshot.

The parent makes a series of backups of a growing leader (snapshot k is at applied index
``STEP * k``). A child (from a forkserver, as in tests/storage/test_storage_crash.py) installs
them in order into one follower's state directory and reports each commit; the parent kills it at
a random moment, reopens the follower, and checks its contents are exactly those of one snapshot
(old or new, never a mix), no older than the last one reported, and that no temporary directory
is left behind.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from multiprocessing.connection import Connection
from pathlib import Path

from kvhelpers import M0, Log, put

from raftkv.kv import KVStateMachine, backup_to_file
from raftkv.kv.snapshot import install_stream, read_file_pieces

STEP = 50
SNAPSHOTS = 40
ITERATIONS = int(os.environ.get("RAFTKV_INSTALL_CRASH_ITERATIONS", "30"))
CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(["__main__", "raftkv.kv", __name__])


def make_backups(root: Path) -> list[list[tuple[bytes, bytes]]]:
    """Backup files root/k.snap for k = 1..SNAPSHOTS; returns each one's contents (index k)."""
    leader = KVStateMachine.open(root / "leader" / "state", initial_membership=M0)
    log = Log()
    contents: list[list[tuple[bytes, bytes]]] = [[]]
    for k in range(1, SNAPSHOTS + 1):
        # Overwrite a few keys and add new ones, so consecutive snapshots differ throughout.
        leader.apply(
            [
                log.entry(put(b"key%04d" % ((k * 7 + i) % 300), b"%d-%d" % (k, i)))
                for i in range(STEP)
            ]
        )
        backup_to_file(leader, root / f"{k}.snap")
        contents.append(leader.scan(limit=10**6).items)
    leader.close()
    return contents


def installer_child(root: Path, follower: Path, conn: Connection) -> None:
    state = KVStateMachine.open(follower, initial_membership=M0)
    for k in range(state.applied_index() // STEP + 1, SNAPSHOTS + 1):
        meta = install_stream(state, read_file_pieces(root / f"{k}.snap", 4096))
        conn.send(meta.index // STEP)
    conn.send("done")
    conn.recv()  # wait to be killed


def test_sigkill_during_installs(tmp_path: Path) -> None:
    contents = make_backups(tmp_path)
    rng = random.Random(5)
    follower = tmp_path / "f0" / "state"
    floor = 0
    for i in range(ITERATIONS):
        reader, writer = CONTEXT.Pipe()
        proc = CONTEXT.Process(target=installer_child, args=(tmp_path, follower, writer))
        proc.start()
        writer.close()
        wanted = rng.choice([0, 0, 1, 2, 4])
        reports: list[object] = []
        try:
            while len(reports) < wanted and "done" not in reports:
                reports.append(reader.recv())
        except EOFError:
            pass
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL, "the child died on its own (see its traceback)"
        try:
            while True:
                reports.append(reader.recv())
        except (EOFError, OSError):
            pass
        reader.close()
        installed = [r for r in reports if isinstance(r, int)]
        floor = max([floor, *installed])

        # The child may have been killed before it created the follower.
        state = KVStateMachine.open(follower, initial_membership=M0)
        k = state.applied_index() // STEP
        assert state.applied_index() == k * STEP
        assert k >= floor
        assert state.scan(limit=10**6).items == contents[k], f"iteration {i}: a mixed state"
        state.close()
        assert sorted(os.listdir(follower.parent)) == ["state"]
        if "done" in reports or k == SNAPSHOTS:
            follower = tmp_path / f"f{i + 1}" / "state"  # start over with a fresh follower
            floor = 0
