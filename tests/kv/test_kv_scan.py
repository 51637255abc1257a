"""Reads: scan by prefix or range, in key order, with paging."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from kvhelpers import M0, Log, put

from raftkv.kv import KVStateMachine
from raftkv.kv.layout import prefix_end


def test_scan_order_prefix_range_and_paging(tmp_path: Path) -> None:
    sm = KVStateMachine.open(tmp_path / "s", initial_membership=M0)
    keys = [b"a", b"b/1", b"b/2", b"b/10", b"b\xff", b"b\xff\xff", b"c", b"\xff", b""]
    sm.apply(Log().entries(*(put(k, b"v" + k) for k in keys)))
    everything = sm.scan()
    assert [k for k, _ in everything.items] == sorted(keys)
    assert not everything.more
    assert everything.index == len(keys) == sm.applied_index()
    assert sm.get_with_index(b"b/1") == (b"vb/1", len(keys))
    assert sm.get_with_index(b"missing") == (None, len(keys))
    assert [k for k, _ in sm.scan(prefix=b"b/").items] == [b"b/1", b"b/10", b"b/2"]
    assert [k for k, _ in sm.scan(prefix=b"b\xff").items] == [b"b\xff", b"b\xff\xff"]
    assert [k for k, _ in sm.scan(prefix=b"\xff").items] == [b"\xff"]
    assert [k for k, _ in sm.scan(start=b"b", end=b"c").items] == [
        b"b/1",
        b"b/10",
        b"b/2",
        b"b\xff",
        b"b\xff\xff",
    ]
    # Paging: pass next_start back until done.
    seen: list[bytes] = []
    start = b""
    while True:
        page = sm.scan(start=start, limit=2)
        assert len(page.items) <= 2
        seen.extend(k for k, _ in page.items)
        if page.next_start is None:
            break
        start = page.next_start
    assert seen == sorted(keys)
    page = sm.scan(prefix=b"b/", limit=1)
    assert page.items == [(b"b/1", b"vb/1")] and page.next_start == b"b/10"
    assert [k for k, _ in sm.scan(prefix=b"b/", start=page.next_start).items] == [b"b/10", b"b/2"]
    sm.close()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=6), st.binary(max_size=6))
def test_prefix_end_bounds_exactly_the_prefixed_keys(prefix: bytes, key: bytes) -> None:
    end = prefix_end(prefix)
    inside = key.startswith(prefix)
    in_range = key >= prefix and (end is None or key < end)
    assert inside == in_range
