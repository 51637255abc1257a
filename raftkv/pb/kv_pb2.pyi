from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Consistency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSISTENCY_LINEARIZABLE: _ClassVar[Consistency]
    CONSISTENCY_STALE: _ClassVar[Consistency]
CONSISTENCY_LINEARIZABLE: Consistency
CONSISTENCY_STALE: Consistency

class Command(_message.Message):
    __slots__ = ("client_id", "sequence", "put", "delete", "cas", "member_address", "issued_at_ms")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    client_id: int
    sequence: int
    put: PutOp
    delete: DeleteOp
    cas: CasOp
    member_address: SetMemberAddressOp
    issued_at_ms: int
    def __init__(self, client_id: _Optional[int] = ..., sequence: _Optional[int] = ..., put: _Optional[_Union[PutOp, _Mapping]] = ..., delete: _Optional[_Union[DeleteOp, _Mapping]] = ..., cas: _Optional[_Union[CasOp, _Mapping]] = ..., member_address: _Optional[_Union[SetMemberAddressOp, _Mapping]] = ..., issued_at_ms: _Optional[int] = ...) -> None: ...

class PutOp(_message.Message):
    __slots__ = ("key", "value", "return_previous")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RETURN_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    return_previous: bool
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., return_previous: _Optional[bool] = ...) -> None: ...

class DeleteOp(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    def __init__(self, key: _Optional[bytes] = ...) -> None: ...

class CasOp(_message.Message):
    __slots__ = ("key", "expected", "expect_absent", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ABSENT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    expected: bytes
    expect_absent: bool
    value: bytes
    def __init__(self, key: _Optional[bytes] = ..., expected: _Optional[bytes] = ..., expect_absent: _Optional[bool] = ..., value: _Optional[bytes] = ...) -> None: ...

class SetMemberAddressOp(_message.Message):
    __slots__ = ("node_id", "address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    address: str
    def __init__(self, node_id: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class CommandResult(_message.Message):
    __slots__ = ("ok", "had_previous", "previous", "index")
    OK_FIELD_NUMBER: _ClassVar[int]
    HAD_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    had_previous: bool
    previous: bytes
    index: int
    def __init__(self, ok: _Optional[bool] = ..., had_previous: _Optional[bool] = ..., previous: _Optional[bytes] = ..., index: _Optional[int] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("client_id", "sequence")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    client_id: int
    sequence: int
    def __init__(self, client_id: _Optional[int] = ..., sequence: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("key", "consistency")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    consistency: Consistency
    def __init__(self, key: _Optional[bytes] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("found", "value", "index")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    index: int
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ..., index: _Optional[int] = ...) -> None: ...

class PutRequest(_message.Message):
    __slots__ = ("key", "value", "return_previous", "session")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RETURN_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    return_previous: bool
    session: Session
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., return_previous: _Optional[bool] = ..., session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class PutResponse(_message.Message):
    __slots__ = ("had_previous", "previous", "index")
    HAD_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    had_previous: bool
    previous: bytes
    index: int
    def __init__(self, had_previous: _Optional[bool] = ..., previous: _Optional[bytes] = ..., index: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("key", "session")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    session: Session
    def __init__(self, key: _Optional[bytes] = ..., session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted", "index")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    index: int
    def __init__(self, deleted: _Optional[bool] = ..., index: _Optional[int] = ...) -> None: ...

class CompareAndSwapRequest(_message.Message):
    __slots__ = ("key", "expected", "expect_absent", "value", "session")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ABSENT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    expected: bytes
    expect_absent: bool
    value: bytes
    session: Session
    def __init__(self, key: _Optional[bytes] = ..., expected: _Optional[bytes] = ..., expect_absent: _Optional[bool] = ..., value: _Optional[bytes] = ..., session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class CompareAndSwapResponse(_message.Message):
    __slots__ = ("swapped", "had_current", "current", "index")
    SWAPPED_FIELD_NUMBER: _ClassVar[int]
    HAD_CURRENT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    swapped: bool
    had_current: bool
    current: bytes
    index: int
    def __init__(self, swapped: _Optional[bool] = ..., had_current: _Optional[bool] = ..., current: _Optional[bytes] = ..., index: _Optional[int] = ...) -> None: ...

class ScanRequest(_message.Message):
    __slots__ = ("prefix", "start", "end", "limit", "consistency")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    prefix: bytes
    start: bytes
    end: bytes
    limit: int
    consistency: Consistency
    def __init__(self, prefix: _Optional[bytes] = ..., start: _Optional[bytes] = ..., end: _Optional[bytes] = ..., limit: _Optional[int] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class KeyValue(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class ScanResponse(_message.Message):
    __slots__ = ("items", "more", "next_start", "index")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_START_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[KeyValue]
    more: bool
    next_start: bytes
    index: int
    def __init__(self, items: _Optional[_Iterable[_Union[KeyValue, _Mapping]]] = ..., more: _Optional[bool] = ..., next_start: _Optional[bytes] = ..., index: _Optional[int] = ...) -> None: ...

class BatchOp(_message.Message):
    __slots__ = ("get", "put", "delete", "compare_and_swap")
    GET_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    COMPARE_AND_SWAP_FIELD_NUMBER: _ClassVar[int]
    get: GetRequest
    put: PutRequest
    delete: DeleteRequest
    compare_and_swap: CompareAndSwapRequest
    def __init__(self, get: _Optional[_Union[GetRequest, _Mapping]] = ..., put: _Optional[_Union[PutRequest, _Mapping]] = ..., delete: _Optional[_Union[DeleteRequest, _Mapping]] = ..., compare_and_swap: _Optional[_Union[CompareAndSwapRequest, _Mapping]] = ...) -> None: ...

class OpError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("get", "put", "delete", "compare_and_swap", "error")
    GET_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    COMPARE_AND_SWAP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    get: GetResponse
    put: PutResponse
    delete: DeleteResponse
    compare_and_swap: CompareAndSwapResponse
    error: OpError
    def __init__(self, get: _Optional[_Union[GetResponse, _Mapping]] = ..., put: _Optional[_Union[PutResponse, _Mapping]] = ..., delete: _Optional[_Union[DeleteResponse, _Mapping]] = ..., compare_and_swap: _Optional[_Union[CompareAndSwapResponse, _Mapping]] = ..., error: _Optional[_Union[OpError, _Mapping]] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ("ops",)
    OPS_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[BatchOp]
    def __init__(self, ops: _Optional[_Iterable[_Union[BatchOp, _Mapping]]] = ...) -> None: ...

class BatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchResult, _Mapping]]] = ...) -> None: ...

class StreamBatchRequest(_message.Message):
    __slots__ = ("id", "timeout_ms", "batch")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    id: int
    timeout_ms: int
    batch: BatchRequest
    def __init__(self, id: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., batch: _Optional[_Union[BatchRequest, _Mapping]] = ...) -> None: ...

class StreamBatchResponse(_message.Message):
    __slots__ = ("id", "batch", "error", "leader")
    ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    id: int
    batch: BatchResponse
    error: OpError
    leader: str
    def __init__(self, id: _Optional[int] = ..., batch: _Optional[_Union[BatchResponse, _Mapping]] = ..., error: _Optional[_Union[OpError, _Mapping]] = ..., leader: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FollowerStatus(_message.Message):
    __slots__ = ("id", "match_index", "next_index", "state", "inflight", "lazy")
    ID_FIELD_NUMBER: _ClassVar[int]
    MATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    NEXT_INDEX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    LAZY_FIELD_NUMBER: _ClassVar[int]
    id: int
    match_index: int
    next_index: int
    state: str
    inflight: int
    lazy: bool
    def __init__(self, id: _Optional[int] = ..., match_index: _Optional[int] = ..., next_index: _Optional[int] = ..., state: _Optional[str] = ..., inflight: _Optional[int] = ..., lazy: _Optional[bool] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("id", "address", "learner")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEARNER_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    learner: bool
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ..., learner: _Optional[bool] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("id", "address", "role", "term", "leader_id", "leader_address", "commit_index", "applied_index", "last_index", "first_index", "members", "followers", "cluster_id", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEX_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    FOLLOWERS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    role: str
    term: int
    leader_id: int
    leader_address: str
    commit_index: int
    applied_index: int
    last_index: int
    first_index: int
    members: _containers.RepeatedCompositeFieldContainer[Member]
    followers: _containers.RepeatedCompositeFieldContainer[FollowerStatus]
    cluster_id: str
    version: str
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ..., role: _Optional[str] = ..., term: _Optional[int] = ..., leader_id: _Optional[int] = ..., leader_address: _Optional[str] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., last_index: _Optional[int] = ..., first_index: _Optional[int] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., followers: _Optional[_Iterable[_Union[FollowerStatus, _Mapping]]] = ..., cluster_id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class TransferLeaderRequest(_message.Message):
    __slots__ = ("target_id",)
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    target_id: int
    def __init__(self, target_id: _Optional[int] = ...) -> None: ...

class TransferLeaderResponse(_message.Message):
    __slots__ = ("leader_id",)
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    leader_id: int
    def __init__(self, leader_id: _Optional[int] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackupChunk(_message.Message):
    __slots__ = ("meta", "data", "done", "crc32c")
    META_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CRC32C_FIELD_NUMBER: _ClassVar[int]
    meta: BackupMeta
    data: bytes
    done: bool
    crc32c: int
    def __init__(self, meta: _Optional[_Union[BackupMeta, _Mapping]] = ..., data: _Optional[bytes] = ..., done: _Optional[bool] = ..., crc32c: _Optional[int] = ...) -> None: ...

class BackupMeta(_message.Message):
    __slots__ = ("index", "term", "voters", "learners", "cluster_id")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    index: int
    term: int
    voters: _containers.RepeatedScalarFieldContainer[int]
    learners: _containers.RepeatedScalarFieldContainer[int]
    cluster_id: str
    def __init__(self, index: _Optional[int] = ..., term: _Optional[int] = ..., voters: _Optional[_Iterable[int]] = ..., learners: _Optional[_Iterable[int]] = ..., cluster_id: _Optional[str] = ...) -> None: ...

class MemberListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MemberAddRequest(_message.Message):
    __slots__ = ("id", "address", "learner")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEARNER_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    learner: bool
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ..., learner: _Optional[bool] = ...) -> None: ...

class MemberPromoteRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class MemberRemoveRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class MemberListResponse(_message.Message):
    __slots__ = ("members", "leader_id", "leader_address", "outgoing", "cluster_id", "index", "unreachable")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    OUTGOING_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    leader_id: int
    leader_address: str
    outgoing: _containers.RepeatedScalarFieldContainer[int]
    cluster_id: str
    index: int
    unreachable: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., leader_id: _Optional[int] = ..., leader_address: _Optional[str] = ..., outgoing: _Optional[_Iterable[int]] = ..., cluster_id: _Optional[str] = ..., index: _Optional[int] = ..., unreachable: _Optional[_Iterable[int]] = ...) -> None: ...
