"""The search engine of the checker: Wing-Gong-Lowe with memoization, for one key's ops.

The search is the one Porcupine uses (after Lowe's refinement of Wing & Gong): the history becomes a
doubly linked list of call and return entries in time order; the search repeatedly picks a call
that precedes the first return in the list, applies it to the model, and lifts it out of the list;
when a return is reached whose op is not yet linearized, it backtracks. A cache of
(linearized-set bitset, model state) pairs already explored makes it polynomial in practice; here
the bitset covers definite ops and unknown ops are tracked as per-class counts (see ``_visit``).

Rules kept here:
- The caller drops ``fail`` ops (they did not happen) and unknown gets (they observe nothing).
  Unknown writes may take effect at any time after invocation, or never: they have no
  return entry (completion = +infinity) and are kept out of the list, offered as extra candidates
  at every step. "Never" needs no special case: such an op can always go last, where nothing
  observes it, so the search succeeds once every *definite* op is linearized.
- Five pruning rules, all verdict-preserving: (1) unknown ops with the same effect are
  interchangeable, so they are only linearized in invocation order (a swap argument: any
  linearization using a later one first can use the earlier one instead); (2) an unknown op is
  never linearized where it would not change the state (it could go last instead); (3) unknown
  ops are only linearized just before a definite op that needs them, (4) in blocks that hold
  at most one put or delete, at the start (see ``Search.run``); (5) an unknown cas that would
  do the same as an unknown put is used first (``_cas_can_do``).
- Unknown writes whose value was observed provably happened; they are checked as definite ops
  with a deadline (``observed_write_deadlines``).
- Equal timestamps count as overlapping (calls sort before returns): a coarse clock must never
  manufacture a violation.
- The search is bounded by a step and time budget; exceeding it yields ``unknown``, never a hang.
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass, replace

from .history import Op, OpKind, Outcome
from .model import ABSENT, CAS, INVALID, PUT, EncodedOp, ValueCodes, step


class Verdict(enum.StrEnum):
    OK = "ok"
    VIOLATION = "violation"
    UNKNOWN = "unknown"  # budget exceeded: no verdict


@dataclass(frozen=True, slots=True)
class Budget:
    """Per-key search bounds."""

    time_s: float = 30.0
    max_steps: int = 20_000_000


def observed_write_deadlines(ops: list[Op]) -> dict[int, float]:
    """Unknown writes that provably happened, and the time by which they did: op id -> deadline.

    If an unknown put or cas is the only op writing value v, and a definite op observed v (a get
    returned it, or a cas expecting it swapped), the write happened, swapped (for a cas), and was
    linearized before that observer completed. Such a write is checked as a definite op with that
    deadline as its completion: same verdicts, far less search (it is no longer optional).
    """
    writers: dict[str, list[Op]] = {}
    for op in ops:
        if op.kind in (OpKind.PUT, OpKind.CAS) and op.value is not None:
            writers.setdefault(op.value, []).append(op)
    seen_by: dict[str, float] = {}
    for op in ops:
        if op.outcome is not Outcome.OK or op.complete_s is None:
            continue
        if op.kind is OpKind.GET and isinstance(op.result, str):
            value: str | None = op.result
        elif op.kind is OpKind.CAS and op.result is True:
            value = op.expected
        else:
            continue
        if value is not None:
            seen_by[value] = min(seen_by.get(value, math.inf), op.complete_s)
    deadlines = {}
    for value, deadline in seen_by.items():
        sources = writers.get(value, [])
        if len(sources) == 1 and sources[0].outcome is Outcome.UNKNOWN:
            # Clamped to stay well-formed; an observer that completed before the write was even
            # invoked then cannot be placed, and the search reports that violation.
            deadlines[sources[0].id] = max(deadline, sources[0].invoke_s)
    return deadlines


# Stack frame kinds.
_FINITE, _UNKNOWN = 0, 1
_NO_BLOCK = -3  # not a model state: outside a block of unknown ops


class Search:
    """One WGL search over one key's ops. Definite ops are bits 0..F-1, unknown ones F..F+U-1."""

    def __init__(self, ops: list[Op], budget: Budget) -> None:
        self.budget = budget
        self.steps = 0
        codes = ValueCodes(ops)
        deadlines = observed_write_deadlines(ops)
        finite = [op for op in ops if op.outcome is Outcome.OK or op.id in deadlines]
        unknown = [op for op in ops if op.outcome is Outcome.UNKNOWN and op.id not in deadlines]
        self.ops = finite + unknown
        self.n_finite = len(finite)
        self.enc: list[EncodedOp] = [codes.encode(op) for op in self.ops]
        # When each definite op must be linearized by (its completion, or its deadline).
        self.complete_s: list[float] = []
        for i, op in enumerate(finite):
            if op.id in deadlines:
                self.complete_s.append(deadlines[op.id])
                if op.kind is OpKind.CAS:  # its value was seen, so it swapped
                    self.enc[i] = replace(self.enc[i], result=1)
            else:
                assert op.complete_s is not None
                self.complete_s.append(op.complete_s)

        # Time order: calls before returns at equal times (equal = overlapping); op id breaks ties.
        events: list[tuple[float, int, int]] = []
        for i, op in enumerate(self.ops):
            events.append((op.invoke_s, 0, i))
            if i < self.n_finite:
                events.append((self.complete_s[i], 1, i))
        events.sort(key=lambda ev: (ev[0], ev[1], self.ops[ev[2]].id))

        # Linked list of definite ops' entries; node 0 is the head sentinel, -1 is the end.
        n_nodes = 2 * self.n_finite + 1
        self.nxt = [-1] * n_nodes
        self.prv = [-1] * n_nodes
        self.node_op = [-1] * n_nodes
        self.node_is_call = [False] * n_nodes
        self.node_pos = [math.inf] * n_nodes
        self.match = [-1] * n_nodes
        self.unknown_pos: dict[int, int] = {}
        call_node: dict[int, int] = {}
        last = 0
        node = 1
        for pos, (_, is_return, i) in enumerate(events):
            if i >= self.n_finite:
                self.unknown_pos[i] = pos
                continue
            self.node_op[node] = i
            self.node_is_call[node] = not is_return
            self.node_pos[node] = pos
            if is_return:
                self.match[call_node[i]] = node
            else:
                call_node[i] = node
            self.nxt[last] = node
            self.prv[node] = last
            last = node
            node += 1

        # Unknown ops grouped into interchangeable classes, each in invocation order.
        classes: dict[tuple[int, int, int], list[int]] = {}
        for i in sorted(self.unknown_pos, key=self.unknown_pos.__getitem__):
            classes.setdefault(self.enc[i].effect_class, []).append(i)
        self.classes = list(classes.values())
        self.cas_class = {
            (self.enc[members[0]].expected, self.enc[members[0]].value): n
            for n, members in enumerate(self.classes)
            if self.enc[members[0]].kind == CAS
        }

        self.best_depth = -1
        self.best_stack: list[int] = []  # op indices in linearization order

    def _lift(self, call: int) -> None:
        ret = self.match[call]
        self.nxt[self.prv[call]] = self.nxt[call]
        self.prv[self.nxt[call]] = self.prv[call]
        self.nxt[self.prv[ret]] = self.nxt[ret]
        if self.nxt[ret] != -1:
            self.prv[self.nxt[ret]] = self.prv[ret]

    def _unlift(self, call: int) -> None:
        ret = self.match[call]
        self.nxt[self.prv[ret]] = ret
        if self.nxt[ret] != -1:
            self.prv[self.nxt[ret]] = ret
        self.nxt[self.prv[call]] = call
        self.prv[self.nxt[call]] = call

    @staticmethod
    def _visit(
        seen: dict[tuple[int, int, int], list[tuple[int, ...]]],
        linearized: int,
        state: int,
        block: int,
        taken: list[int],
    ) -> bool:
        """Record a search state; False if it is already covered.

        A state is (definite ops linearized, model state, open block, unknown ops consumed).
        Consuming fewer unknown ops is never worse (the spare ones can go last), so a state is
        covered by an explored one that agrees on the rest and consumed a subset: whatever
        completes from here would complete from there too. Consumption is a prefix per class, so
        "subset" is a componentwise <= of the per-class counts.
        """
        vector = tuple(taken)
        explored = seen.setdefault((linearized, state, block), [])
        for old in explored:
            if all(a <= b for a, b in zip(old, vector, strict=True)):
                return False
        explored.append(vector)
        return True

    def run(self) -> tuple[Verdict, str]:
        """The search loop. Rule (3) lives here: unknown ops are placed in *blocks*, and the
        definite op that follows a block must be impossible on the state the block started
        from. Any linearization can be brought to that form: if the next definite op d also
        works without the block, then either d leaves the state alone (swap d before the block:
        unknown ops have no return, so nothing forbids it) or d overwrites it (the block was
        useless: move it last). ``block`` is that start state, or NO_BLOCK outside a block."""
        if self.n_finite == 0:
            return Verdict.OK, "no definite operations"
        nxt, node_op, node_is_call, enc = self.nxt, self.node_op, self.node_is_call, self.enc
        classes, unknown_pos, visit = self.classes, self.unknown_pos, self._visit
        taken = [0] * len(classes)  # how many of each class are linearized (always a prefix)
        deadline = time.monotonic() + self.budget.time_s
        max_steps = self.budget.max_steps
        seen: dict[tuple[int, int, int], list[tuple[int, ...]]] = {}
        # Frame: (kind, node-or-class, previous state, previous block, unknown-phase bound).
        stack: list[tuple[int, int, int, int, float]] = []
        order: list[int] = []
        state, block, linearized, done = ABSENT, _NO_BLOCK, 0, 0
        node = nxt[0]
        unknown_phase, cls, bound = False, 0, math.inf
        steps = 0
        while True:
            steps += 1
            if steps > max_steps or (steps & 0xFFF == 0 and time.monotonic() > deadline):
                self.steps = steps
                return Verdict.UNKNOWN, (
                    f"unknown: budget exceeded ({steps} steps, {self.budget.time_s}s)"
                )
            if not unknown_phase:
                if node_is_call[node]:
                    i = node_op[node]
                    new_state = step(state, enc[i])
                    if (
                        new_state != INVALID
                        and (block == _NO_BLOCK or step(block, enc[i]) == INVALID)
                        and visit(seen, linearized | (1 << i), new_state, _NO_BLOCK, taken)
                    ):
                        stack.append((_FINITE, node, state, block, 0.0))
                        order.append(i)
                        state, block, linearized = new_state, _NO_BLOCK, linearized | (1 << i)
                        done += 1
                        self._lift(node)
                        if done == self.n_finite:
                            self.steps = steps
                            return Verdict.OK, "linearizable"
                        if done > self.best_depth:
                            self.best_depth = done
                            self.best_stack = order.copy()
                        node = nxt[0]
                        continue
                    node = nxt[node]
                    continue
                # First return entry in the list: its op must go before anything invoked later.
                unknown_phase, cls, bound = True, 0, self.node_pos[node]
            placed = False
            while cls < len(classes):
                members = classes[cls]
                if taken[cls] < len(members):
                    i = members[taken[cls]]
                    # Rule (4): inside a block only cas may follow; a put or delete there would
                    # overwrite what the block did so far, so that part could go last instead.
                    if unknown_pos[i] < bound and (block == _NO_BLOCK or enc[i].kind == CAS):
                        new_state = step(state, enc[i])
                        # Rule (2): a no-op placement is never needed; it could go last instead.
                        if new_state not in (INVALID, state) and not (
                            enc[i].kind == PUT and self._cas_can_do(state, new_state, taken, bound)
                        ):
                            new_block = state if block == _NO_BLOCK else block
                            taken[cls] += 1
                            if visit(seen, linearized, new_state, new_block, taken):
                                stack.append((_UNKNOWN, cls, state, block, bound))
                                order.append(i)
                                state, block = new_state, new_block
                                placed = True
                                break
                            taken[cls] -= 1
                cls += 1
            if placed:
                unknown_phase, node = False, nxt[0]
                continue
            if not stack:
                self.steps = steps
                return Verdict.VIOLATION, "not linearizable"
            kind, where, state, block, bound = stack.pop()
            i = order.pop()
            if kind == _FINITE:
                linearized &= ~(1 << i)
                done -= 1
                self._unlift(where)
                unknown_phase, node = False, nxt[where]
            else:
                taken[where] -= 1
                unknown_phase, cls = True, where + 1

    def _cas_can_do(self, state: int, new_state: int, taken: list[int], bound: float) -> bool:
        """Rule (5): is an available unknown cas(state -> new_state) there? Then use it rather
        than an unknown put of the same value: the put works from any state, so keeping it
        spare is never worse (swap the two in any linearization)."""
        cls = self.cas_class.get((state, new_state))
        if cls is None or taken[cls] >= len(self.classes[cls]):
            return False
        return self.unknown_pos[self.classes[cls][taken[cls]]] < bound

    def best_partial(self) -> tuple[tuple[Op, ...], Op]:
        """The longest linearizable prefix found and the definite op that could not follow it:
        the not-yet-linearized definite op that returned first (it blocked every extension)."""
        placed = set(self.best_stack)
        prefix = tuple(self.ops[i] for i in self.best_stack)
        pending = [i for i in range(self.n_finite) if i not in placed]
        failed = min(pending, key=lambda i: (self.complete_s[i], self.ops[i].id))
        return prefix, self.ops[failed]
