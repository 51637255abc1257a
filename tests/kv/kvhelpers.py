"""Builders for committed entries carrying KV commands (shared by the tests in tests/kv)."""

from __future__ import annotations

from raftkv.core.membership import encode_membership, membership_of
from raftkv.core.types import Entry, EntryKind, Index, Term
from raftkv.pb import kv_pb2

M0 = membership_of([1, 2, 3])


def put(
    key: bytes,
    value: bytes,
    *,
    client: int = 0,
    seq: int = 0,
    at_ms: int = 0,
    previous: bool = False,
) -> bytes:
    return kv_pb2.Command(
        client_id=client,
        sequence=seq,
        issued_at_ms=at_ms,
        put=kv_pb2.PutOp(key=key, value=value, return_previous=previous),
    ).SerializeToString()


def delete(key: bytes, *, client: int = 0, seq: int = 0, at_ms: int = 0) -> bytes:
    return kv_pb2.Command(
        client_id=client, sequence=seq, issued_at_ms=at_ms, delete=kv_pb2.DeleteOp(key=key)
    ).SerializeToString()


def cas(
    key: bytes,
    value: bytes,
    *,
    expected: bytes = b"",
    absent: bool = False,
    client: int = 0,
    seq: int = 0,
    at_ms: int = 0,
) -> bytes:
    return kv_pb2.Command(
        client_id=client,
        sequence=seq,
        issued_at_ms=at_ms,
        cas=kv_pb2.CasOp(key=key, expected=expected, expect_absent=absent, value=value),
    ).SerializeToString()


class Log:
    """Numbers entries: ``log.entry(data)`` returns the next Entry."""

    def __init__(self, start: int = 0, term: int = 1) -> None:
        self.index = start
        self.term = term

    def entry(self, data: bytes = b"", kind: EntryKind = EntryKind.NORMAL) -> Entry:
        self.index += 1
        return Entry(term=Term(self.term), index=Index(self.index), kind=kind, data=data)

    def entries(self, *datas: bytes) -> list[Entry]:
        return [self.entry(d) for d in datas]

    def conf(self, voters: list[int]) -> Entry:
        return self.entry(encode_membership(membership_of(voters)), EntryKind.CONF_CHANGE)
