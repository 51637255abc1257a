"""The history of a chaos run: every client operation, when it started and ended, what came back.

Rules kept here:
- An operation is immutable once recorded (`Op` is a frozen value); `Recorder` is the only builder.
- The outcome follows Jepsen: ``ok`` (it happened, and ``result`` is what it returned), ``fail``
  (it definitely did not happen), ``info`` (unknown: it may have happened, at any time after its
  invocation, or never).
- Values are ``str``; ``None`` means "absent" (a get of a missing key, a cas expecting absence).
- JSON is the interchange format (``save``/``load``), versioned, so a failing history can be
  re-checked offline long after the run.
"""

from __future__ import annotations

import enum
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

FORMAT = "raftkv-history/1"

Value = str | None
Result = str | bool | None


class OpKind(enum.StrEnum):
    GET = "get"  # returns the value or None
    PUT = "put"  # sets value; returns None
    CAS = "cas"  # if current == expected (None = absent) set value; returns whether it swapped
    DELETE = "delete"  # removes the key; returns whether it existed


class Outcome(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "info"


class HistoryError(ValueError):
    """A history file or a recorded operation is malformed (blame: whoever wrote it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    """One client operation: the invocation, and how it completed.

    ``complete_s`` is when the client saw the outcome (for an unknown outcome: when it gave up; the
    checker treats that as +infinity). ``result`` is meaningful only for ``ok``.
    """

    id: int
    process: int
    kind: OpKind
    key: str
    value: Value = None  # put: the value written; cas: the new value
    expected: Value = None  # cas: the value it expects (None = absent)
    invoke_s: float
    complete_s: float | None = None
    outcome: Outcome = Outcome.UNKNOWN
    result: Result = None
    error: str | None = None  # the exception text, for fail/info

    def describe(self) -> str:
        """Stable one-line text: ``p3 cas(k1, 'v7'->'v9') ok True``."""
        if self.kind is OpKind.GET:
            call = f"get({self.key})"
        elif self.kind is OpKind.PUT:
            call = f"put({self.key}, {self.value!r})"
        elif self.kind is OpKind.CAS:
            call = f"cas({self.key}, {self.expected!r}->{self.value!r})"
        else:
            call = f"delete({self.key})"
        tail = f" {self.result!r}" if self.outcome is Outcome.OK else ""
        return f"#{self.id} p{self.process} {call} {self.outcome.value}{tail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "process": self.process,
            "kind": self.kind.value,
            "key": self.key,
            "value": self.value,
            "expected": self.expected,
            "invoke_s": self.invoke_s,
            "complete_s": self.complete_s,
            "outcome": self.outcome.value,
            "result": self.result,
            "error": self.error,
        }

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> Op:
        try:
            op = Op(
                id=int(raw["id"]),
                process=int(raw["process"]),
                kind=OpKind(raw["kind"]),
                key=str(raw["key"]),
                value=_opt_str(raw.get("value")),
                expected=_opt_str(raw.get("expected")),
                invoke_s=float(raw["invoke_s"]),
                complete_s=None if raw.get("complete_s") is None else float(raw["complete_s"]),
                outcome=Outcome(raw["outcome"]),
                result=raw.get("result"),
                error=raw.get("error"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HistoryError(f"bad op {dict(raw)!r}: {exc}") from exc
        validate_op(op)
        return op


def _opt_str(raw: object) -> Value:
    if raw is None or isinstance(raw, str):
        return raw
    raise HistoryError(f"value must be a string or null, got {raw!r}")


def validate_op(op: Op) -> None:
    """Raise HistoryError if the op cannot be a well-formed record of its kind."""
    if op.outcome is not Outcome.UNKNOWN and op.complete_s is None:
        raise HistoryError(f"{op.describe()}: a definite outcome needs complete_s")
    if op.complete_s is not None and op.complete_s < op.invoke_s:
        raise HistoryError(f"{op.describe()}: completes before it was invoked")
    if op.kind in (OpKind.PUT, OpKind.CAS) and op.value is None:
        raise HistoryError(f"{op.describe()}: {op.kind.value} needs a value")
    if op.outcome is Outcome.OK:
        if op.kind is OpKind.GET and not (op.result is None or isinstance(op.result, str)):
            raise HistoryError(f"{op.describe()}: get returns a string or None")
        if op.kind in (OpKind.CAS, OpKind.DELETE) and not isinstance(op.result, bool):
            raise HistoryError(f"{op.describe()}: {op.kind.value} returns a bool")


@dataclass(frozen=True, slots=True)
class History:
    """Recorded operations plus free-form metadata (seed, fault schedule, cluster size...)."""

    ops: tuple[Op, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def keys(self) -> list[str]:
        return sorted({op.key for op in self.ops})

    def by_key(self) -> dict[str, list[Op]]:
        """Partition by key: the register model is per key, so each key is checked alone."""
        parts: dict[str, list[Op]] = {}
        for op in self.ops:
            parts.setdefault(op.key, []).append(op)
        return parts

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "meta": dict(self.meta), "ops": [op.to_json() for op in self.ops]}

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> History:
        if raw.get("format") != FORMAT:
            raise HistoryError(f"not a {FORMAT} document (format={raw.get('format')!r})")
        ops = tuple(Op.from_json(item) for item in raw.get("ops", []))
        ids = [op.id for op in ops]
        if len(set(ids)) != len(ids):
            raise HistoryError("duplicate op ids")
        return History(ops=ops, meta=dict(raw.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        tmp = target.with_suffix(target.suffix + ".tmp")
        # Write-then-rename so a crash mid-save never leaves a truncated history behind.
        tmp.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")
        tmp.replace(target)
        return target

    @staticmethod
    def load(path: str | Path) -> History:
        try:
            raw = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise HistoryError(f"{path}: not JSON: {exc}") from exc
        return History.from_json(raw)


def history_of(ops: Iterable[Op], **meta: Any) -> History:
    """Build a History from ops (validated), e.g. in hand-written tests."""
    items = tuple(ops)
    for op in items:
        validate_op(op)
    return History(ops=items, meta=meta)


class Recorder:
    """Thread- and task-safe builder of a History: ``invoke`` then exactly one ``complete``.

    The clock is injected so tests and simulations can use their own time; the default is
    ``time.monotonic`` (never wall time: it can jump).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next_id = 0
        self._open: dict[int, Op] = {}
        self._done: list[Op] = []

    def invoke(
        self,
        *,
        process: int,
        kind: OpKind,
        key: str,
        value: Value = None,
        expected: Value = None,
    ) -> int:
        with self._lock:
            op_id = self._next_id
            self._next_id += 1
            self._open[op_id] = Op(
                id=op_id,
                process=process,
                kind=kind,
                key=key,
                value=value,
                expected=expected,
                invoke_s=self._clock(),
            )
        return op_id

    def complete(
        self, op_id: int, outcome: Outcome, result: Result = None, error: str | None = None
    ) -> Op:
        with self._lock:
            pending = self._open.pop(op_id)  # KeyError: completed twice or never invoked
            op = replace(
                pending,
                complete_s=max(self._clock(), pending.invoke_s),
                outcome=outcome,
                result=result if outcome is Outcome.OK else None,
                error=error,
            )
            validate_op(op)
            self._done.append(op)
        return op

    def history(self, **meta: Any) -> History:
        """Completed ops plus still-open ones as unknown (a run that stopped mid-operation)."""
        with self._lock:
            ops = self._done + list(self._open.values())
        return History(ops=tuple(sorted(ops, key=lambda o: o.id)), meta=meta)
