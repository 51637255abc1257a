"""Golden interaction scripts (after etcd-io/raft's ``testdata/*.txt``): a tiny command
language drives a cluster whose messages are held and delivered by hand; each command's output
(messages delivered, the core's log lines, status) is compared with the text in the file.

File format: blocks of ``command args...`` lines, then ``----``, then the expected output, then
a blank line. Lines starting with ``#`` between blocks are comments. Set
``RAFTKV_GOLDEN_REWRITE=1`` to rewrite the expected output from the current behaviour.

Commands: ``cluster n=3 [pre_vote=false] [check_quorum=false]``, ``campaign N``,
``propose N DATA``, ``tick N [COUNT]``, ``stabilize``, ``deliver [to=N]``, ``drop [to=N]``,
``crash N``, ``restart N``, ``read-index N``, ``transfer N TARGET``, ``status``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftkv.core.errors import CoreError
from raftkv.core.messages import (
    AppendRequest,
    AppendResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotRequest,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from raftkv.core.types import Entry
from tests.sim.cluster import Cluster


@dataclass(slots=True)
class Block:
    commands: list[str]
    expected: str
    comments: list[str]


def parse(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = iter(text.splitlines())
    comments: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        if line.startswith("#"):
            comments.append(line)
            continue
        commands = [line]
        for more in lines:
            if more == "----":
                break
            commands.append(more)
        expected: list[str] = []
        for more in lines:
            if not more.strip():
                break
            expected.append(more)
        blocks.append(Block(commands, "\n".join(expected), comments))
        comments = []
    return blocks


def render(blocks: list[Block], outputs: list[str]) -> str:
    parts: list[str] = []
    for block, output in zip(blocks, outputs, strict=True):
        parts.extend(block.comments)
        parts.extend(block.commands)
        parts.append("----")
        parts.append(output if output else "ok")
        parts.append("")
    return "\n".join(parts)


def describe_entries(entries: tuple[Entry, ...]) -> str:
    def one(e: Entry) -> str:
        what = "conf" if e.kind else (repr(e.data.decode()) if e.data else "noop")
        return f"{e.term}/{e.index} {what}"

    return "[" + ", ".join(one(e) for e in entries) + "]"


def describe_message(m: Message) -> str:
    head = f"{m.from_id}->{m.to_id} {type(m).__name__} term={m.term}"
    match m:
        case VoteRequest():
            flags = (" pre-vote" if m.pre_vote else "") + (" transfer" if m.transfer else "")
            return f"{head} last=({m.last_log_index},{m.last_log_term}){flags}"
        case VoteResponse():
            return f"{head} {'granted' if m.granted else 'rejected'}" + (
                " pre-vote" if m.pre_vote else ""
            )
        case AppendRequest():
            body = f" entries={describe_entries(m.entries)}" if m.entries else " heartbeat"
            return f"{head} prev=({m.prev_index},{m.prev_term}) commit={m.commit}{body}"
        case AppendResponse():
            if m.success:
                return f"{head} ok match={m.match_index}"
            return f"{head} reject prev={m.match_index} hint=({m.hint_index},{m.hint_term})"
        case SnapshotRequest():
            return f"{head} snapshot=({m.meta.index},{m.meta.term})"
        case TimeoutNow():
            return head
        case ReadIndexRequest():
            return f"{head} context={m.context}"
        case ReadIndexResponse():
            return f"{head} context={m.context} index={m.index}"
    raise AssertionError(m)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class Interpreter:
    def __init__(self) -> None:
        self.cluster: Cluster | None = None
        self.out: list[str] = []

    @property
    def c(self) -> Cluster:
        assert self.cluster is not None, "the script must start with `cluster`"
        return self.cluster

    def run(self, commands: list[str]) -> str:
        self.out = []
        logger = logging.getLogger("raftkv.core")
        capture = _Capture()
        old_level = logger.level
        logger.addHandler(capture)
        logger.setLevel(logging.INFO)
        try:
            for command in commands:
                self._one(command.split(), capture)
        finally:
            logger.removeHandler(capture)
            logger.setLevel(old_level)
        self._flush_logs(capture)
        return "\n".join(self.out)

    def _flush_logs(self, capture: _Capture) -> None:
        self.out.extend(capture.lines)
        capture.lines.clear()

    def _one(self, words: list[str], capture: _Capture) -> None:
        verb, args = words[0], words[1:]
        kwargs = dict(a.split("=", 1) for a in args if "=" in a)
        plain = [a for a in args if "=" not in a]
        if verb == "cluster":
            flags: dict[str, Any] = {
                k: int(v) if v.isdigit() else v.lower() == "true"
                for k, v in kwargs.items()
                if k != "n"
            }
            self.cluster = Cluster(int(kwargs.get("n", "3")), seed=1, **flags)
            self.cluster.hold_messages = True
            return
        c = self.c
        if verb == "campaign":
            c.campaign(int(plain[0]))
        elif verb == "propose":
            try:
                term, index = c.propose(int(plain[0]), plain[1].encode())
                self.out.append(f"proposed at {index} in term {term}")
            except CoreError as exc:
                self.out.append(f"refused: {type(exc).__name__}: {exc}")
        elif verb == "tick":
            count = int(plain[1]) if len(plain) > 1 else 1
            c.tick_node(int(plain[0]), count)
        elif verb == "stabilize":
            for message in self._delivering(lambda m: True, capture, rounds=100):
                self.out.append(message)
        elif verb == "deliver":
            to = int(kwargs["to"]) if "to" in kwargs else None
            for message in self._delivering(lambda m: to is None or m.to_id == to, capture, 1):
                self.out.append(message)
        elif verb == "drop":
            to = int(kwargs["to"]) if "to" in kwargs else None
            dropped = c.drop_where(lambda m: to is None or m.to_id == to)
            self.out.append(f"dropped {dropped} message(s)")
        elif verb == "crash":
            c.crash(int(plain[0]))
        elif verb == "restart":
            c.restart(int(plain[0]))
        elif verb == "read-index":
            try:
                context = c.read(int(plain[0]))
                self.out.append(f"read context {context}")
            except CoreError as exc:
                self.out.append(f"refused: {type(exc).__name__}: {exc}")
        elif verb == "transfer":
            try:
                c.transfer(int(plain[0]), int(plain[1]))
            except CoreError as exc:
                self.out.append(f"refused: {type(exc).__name__}: {exc}")
        elif verb == "status":
            self._flush_logs(capture)
            self.out.extend(self._status())
        else:
            raise AssertionError(f"unknown command {verb!r}")
        self._flush_logs(capture)

    def _delivering(self, predicate: object, capture: _Capture, rounds: int) -> Iterator[str]:
        c = self.c
        for _ in range(rounds):
            batch = [(m, p) for m, p in c.outbox if predicate(m)]  # type: ignore[operator]
            if not batch:
                return
            c.outbox = [(m, p) for m, p in c.outbox if not predicate(m)]  # type: ignore[operator]
            for message, payload in batch:
                self._flush_logs(capture)
                yield describe_message(message)
                node = c.nodes.get(message.to_id)
                if node is not None and node.raft is not None:
                    c.deliver(message, payload)
                else:
                    yield "  (receiver down: dropped)"
                self._flush_logs(capture)

    def _status(self) -> list[str]:
        lines = []
        for node in self.c.nodes.values():
            if node.raft is None:
                lines.append(f"{node.id}: down")
                continue
            r = node.raft
            reads = ",".join(f"{ctx}@{i}" for ctx, i in sorted(node.served_reads.items()))
            lines.append(
                f"{node.id}: {r.role.value} term={r.term} leader={r.leader_id} "
                f"commit={r.commit_index} applied={r.applied_index} last={r.last_index}"
                + (f" reads={reads}" if reads else "")
            )
        return lines


def run_file(path: Path, rewrite: bool) -> list[tuple[str, str, str]]:
    """Run one script; returns the mismatches (commands, expected, got)."""
    blocks = parse(path.read_text())
    interpreter = Interpreter()
    outputs = [interpreter.run(block.commands) or "ok" for block in blocks]
    if rewrite:
        path.write_text(render(blocks, outputs))
        return []
    return [
        ("\n".join(b.commands), b.expected, got)
        for b, got in zip(blocks, outputs, strict=True)
        if b.expected != got
    ]
