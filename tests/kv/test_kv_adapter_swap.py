"""The driver applies on the event loop while snapshot swaps run on its storage thread: the
adapter's apply lock must keep the two from interleaving (a swap in the middle of an apply would
lose the apply's writes or mix two states)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kvhelpers import M0, Log, put

from raftkv.kv import KVStateMachine, snapshot_chunks
from raftkv.node.kv_adapter import KVAdapter

WAIT_S = 10.0
SWAP_GRACE_S = 0.5
"""How long the swap is given to (wrongly) start while an apply is in progress."""


def test_a_snapshot_swap_waits_for_an_apply_in_progress(tmp_path: Path) -> None:
    leader = KVStateMachine.open(tmp_path / "leader" / "state", initial_membership=M0)
    leader_log = Log(start=0, term=2)
    leader.apply([leader_log.entry(put(b"k%03d" % i, b"v%d" % i, seq=i + 1)) for i in range(300)])
    follower = KVStateMachine.open(tmp_path / "follower" / "state", initial_membership=M0)
    adapter = KVAdapter(follower)
    storage_thread = ThreadPoolExecutor(max_workers=1)
    adapter.submit = storage_thread.submit
    events: list[str] = []
    inside, release = threading.Event(), threading.Event()
    real_apply = follower.apply

    def slow_apply(entries):  # type: ignore[no-untyped-def]
        events.append("apply-start")
        inside.set()
        assert release.wait(WAIT_S)
        try:
            return real_apply(entries)
        finally:
            events.append("apply-end")

    follower.apply = slow_apply  # type: ignore[method-assign]
    follower_log = Log(start=0, term=1)
    applying = threading.Thread(
        target=adapter.apply, args=([follower_log.entry(put(b"stale", b"x", seq=1))],)
    )
    applying.start()
    assert inside.wait(WAIT_S)

    chunks = snapshot_chunks(leader, chunk_bytes=4096)
    first = next(chunks)
    staging = adapter.begin_staging(first.meta)
    for chunk in [first, *chunks]:
        staging.feed(chunk.data)
    real_commit = staging._installer.commit

    def recorded_commit():  # type: ignore[no-untyped-def]
        events.append("swap")
        return real_commit()

    staging._installer.commit = recorded_commit  # type: ignore[method-assign]
    with ThreadPoolExecutor(max_workers=1) as swapper:
        swapped = swapper.submit(staging.commit)
        deadline = time.monotonic() + SWAP_GRACE_S
        while "swap" not in events and time.monotonic() < deadline:
            time.sleep(0.01)  # polling for something that must NOT happen, within a grace
        release.set()
        applying.join(WAIT_S)
        meta = swapped.result(WAIT_S)
    storage_thread.shutdown()

    assert events == ["apply-start", "apply-end", "swap"]
    assert meta.index == 300
    assert follower.applied_index() == 300
    assert follower.get(b"stale") is None, "the snapshot replaced the state the apply wrote"
    assert follower.get(b"k299") == b"v299"
    leader.close()
    follower.close()
