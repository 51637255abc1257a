"""The key-value register model for one key, in the small integer encoding the search runs on.

Rules kept here:
- The state of a key is one int: ``ABSENT`` (0), ``UNOBSERVED`` (1), or the code of a value that
  some operation can observe (2, 3, ...).
- A value is *observable* if an ok get returned it or a cas expects it. Every other value is
  written but never distinguished by anything, so all of them share one code, ``UNOBSERVED``: that
  merges search states without changing any verdict (no operation can tell them apart).
- ``step`` is the whole semantics: get returns the value or None; put sets; delete removes and
  returns whether the key existed; cas(expected or absent, new) swaps iff current == expected and
  returns whether it swapped. An op with an unknown outcome has no result to check.
"""

from __future__ import annotations

from dataclasses import dataclass

from .history import Op, OpKind, Outcome, Value

ABSENT = 0
UNOBSERVED = 1
INVALID = -1

GET, PUT, CAS, DELETE = 0, 1, 2, 3
_KIND_CODE = {OpKind.GET: GET, OpKind.PUT: PUT, OpKind.CAS: CAS, OpKind.DELETE: DELETE}
NO_RESULT = -2  # result code of an op whose outcome is unknown


@dataclass(frozen=True, slots=True)
class EncodedOp:
    """An op as the search sees it: kind, argument codes, and the result code to check."""

    kind: int
    value: int  # put value / cas new value
    expected: int  # cas expected value
    result: int  # value code (get) or 0/1 (cas, delete); NO_RESULT if unknown

    @property
    def effect_class(self) -> tuple[int, int, int]:
        """Unknown ops with equal effect classes are interchangeable (see checker)."""
        return (self.kind, self.value, self.expected)


class ValueCodes:
    """Maps the observable values of one key to small ints, everything else to UNOBSERVED."""

    def __init__(self, ops: list[Op]) -> None:
        observable: set[str] = set()
        for op in ops:
            if op.kind is OpKind.GET and op.outcome is Outcome.OK and isinstance(op.result, str):
                observable.add(op.result)
            if op.kind is OpKind.CAS and op.expected is not None:
                observable.add(op.expected)
        self._codes = {v: i + 2 for i, v in enumerate(sorted(observable))}

    def code(self, value: Value) -> int:
        if value is None:
            return ABSENT
        return self._codes.get(value, UNOBSERVED)

    def encode(self, op: Op) -> EncodedOp:
        known = op.outcome is Outcome.OK
        result = NO_RESULT
        if known and op.kind is OpKind.GET:
            result = self.code(op.result if isinstance(op.result, str) else None)
        elif known and op.kind in (OpKind.CAS, OpKind.DELETE):
            result = int(bool(op.result))
        return EncodedOp(
            kind=_KIND_CODE[op.kind],
            value=self.code(op.value),
            expected=self.code(op.expected),
            result=result,
        )


def step(state: int, op: EncodedOp) -> int:
    """The state after ``op`` runs on ``state``, or INVALID if its recorded result is impossible."""
    kind = op.kind
    if kind == GET:
        if op.result in (NO_RESULT, state):
            return state
        return INVALID
    if kind == PUT:
        return op.value
    if kind == DELETE:
        if op.result == NO_RESULT or op.result == int(state != ABSENT):
            return ABSENT
        return INVALID
    # CAS
    swapped = state == op.expected
    if op.result != NO_RESULT and op.result != int(swapped):
        return INVALID
    return op.value if swapped else state
