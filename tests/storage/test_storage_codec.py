"""Property tests for the raft DB codecs: round trips, numeric key order, damage detected."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.core.membership import Membership
from raftkv.core.types import Entry, EntryKind, HardState, Index, NodeId, SnapshotMeta, Term
from raftkv.storage import codec

u64 = st.integers(0, (1 << 64) - 1)
entries = st.builds(
    lambda t, i, k, d: Entry(term=Term(t), index=Index(i), kind=k, data=d),
    u64,
    u64,
    st.sampled_from(EntryKind),
    st.binary(max_size=300),
)
memberships = st.builds(
    lambda v, learners: Membership(voters=frozenset(v), learners=frozenset(learners - v)),
    st.sets(st.integers(1, 1000), min_size=1, max_size=7),
    st.sets(st.integers(1, 1000), max_size=3),
)


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(entries)
def test_entry_round_trip(entry: Entry) -> None:
    assert codec.decode_entry(entry.index, codec.encode_entry(entry)) == entry


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(st.lists(entries, max_size=5))
def test_batch_encoding_matches_single(batch: list[Entry]) -> None:
    assert codec.encode_entries(batch) == [
        (codec.entry_key(e.index), codec.encode_entry(e)) for e in batch
    ]


@settings(max_examples=300, deadline=None)
@given(entries, st.data())
def test_any_single_byte_damage_is_detected(entry: Entry, data: st.DataObject) -> None:
    value = bytearray(codec.encode_entry(entry))
    pos = data.draw(st.integers(0, len(value) - 1))
    value[pos] ^= data.draw(st.integers(1, 255))
    for check in (codec.decode_entry, codec.verify_entry):
        try:
            decoded = check(entry.index, bytes(value))
        except codec.CodecError:
            continue
        raise AssertionError(f"{check.__name__}: damage at byte {pos} not detected: {decoded}")


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(entries)
def test_verify_agrees_with_decode(entry: Entry) -> None:
    value = codec.encode_entry(entry)
    assert codec.verify_entry(entry.index, value) == (entry.term, entry.kind)


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(entries, u64)
def test_value_under_another_key_is_detected(entry: Entry, other: int) -> None:
    if other == entry.index:
        return
    try:
        codec.decode_entry(other, codec.encode_entry(entry))
    except codec.CodecError:
        return
    raise AssertionError("a record moved to another index decoded")


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(u64, u64)
def test_key_order_is_numeric_order(a: int, b: int) -> None:
    assert (codec.entry_key(a) < codec.entry_key(b)) == (a < b)
    assert codec.index_of_entry_key(codec.entry_key(a)) == a


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(u64, u64, u64)
def test_hard_state_round_trip(term: int, vote: int, commit: int) -> None:
    hs = HardState(term=Term(term), vote=NodeId(vote), commit=Index(commit))
    assert codec.decode_hard_state(codec.encode_hard_state(hs)) == hs


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(u64, u64, memberships)
def test_log_start_round_trip(index: int, term: int, membership: Membership) -> None:
    meta = SnapshotMeta(index=Index(index), term=Term(term), membership=membership)
    assert codec.decode_log_start(codec.encode_log_start(meta)) == meta
