"""Property tests for the raft DB codecs: round trips, numeric key order, bad records refused,
and format 1 (a CRC-32 in every entry) read and checked, for the migration."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.core.membership import Membership
from raftkv.core.types import Entry, EntryKind, HardState, Index, NodeId, SnapshotMeta, Term
from raftkv.storage import codec
from tests.storage.format1 import encode_entry_v1

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
    pairs: list[tuple[bytes, bytes]] = []
    assert codec.put_entries(lambda key, value: pairs.append((key, value)), batch) == len(batch)
    assert pairs == [(codec.entry_key(e.index), codec.encode_entry(e)) for e in batch]


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(entries)
def test_verify_agrees_with_decode(entry: Entry) -> None:
    value = codec.encode_entry(entry)
    assert codec.verify_entry(value) == (entry.term, entry.kind)


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(entries, st.integers(0, 8))
def test_short_record_is_refused(entry: Entry, keep: int) -> None:
    value = codec.encode_entry(entry)[:keep]
    with pytest.raises(codec.CodecError, match=f"entry record is {keep} bytes"):
        codec.decode_entry(entry.index, value)
    with pytest.raises(codec.CodecError, match=f"entry record is {keep} bytes"):
        codec.verify_entry(value)


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(entries, st.integers(len(EntryKind), 255))
def test_unknown_kind_is_refused(entry: Entry, kind: int) -> None:
    value = bytearray(codec.encode_entry(entry))
    value[8] = kind  # the byte after the term
    with pytest.raises(codec.CodecError, match=f"unknown entry kind {kind}"):
        codec.verify_entry(bytes(value))
    with pytest.raises(codec.CodecError, match=f"unknown entry kind {kind}"):
        codec.decode_entry(entry.index, bytes(value))


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(entries)
def test_format_1_records_decode(entry: Entry) -> None:
    assert codec.decode_entry_v1(entry.index, encode_entry_v1(entry)) == entry


@settings(max_examples=300, deadline=None)
@given(entries, st.data())
def test_format_1_damage_is_detected(entry: Entry, data: st.DataObject) -> None:
    """The migration checks each old record's CRC before it rewrites it."""
    value = bytearray(encode_entry_v1(entry))
    pos = data.draw(st.integers(0, len(value) - 1))
    value[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(codec.CodecError):
        codec.decode_entry_v1(entry.index, bytes(value))


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine
@given(entries, u64)
def test_format_1_record_under_another_key_is_detected(entry: Entry, other: int) -> None:
    if other == entry.index:
        return
    with pytest.raises(codec.CodecError, match="checksum mismatch"):
        codec.decode_entry_v1(other, encode_entry_v1(entry))


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
