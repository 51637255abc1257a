"""The harness verbs on top of the engine (MIT 6.5840 style): ``check_one_leader``,
``one(cmd)``, ``propose``, ``read``, ``transfer``, ``campaign``, and membership changes
(``join``, ``change_membership``, ``caught_up``). Every loop is bounded in ticks and raises
:class:`LivenessFailure` when the bound passes.
"""

from __future__ import annotations

from collections.abc import Iterable

from raftkv.core.errors import CoreError
from raftkv.core.membership import Membership
from raftkv.core.types import NodeId
from tests.sim.engine import Engine, LivenessFailure, SimNode

__all__ = ["Cluster", "LivenessFailure", "SimNode"]


class Cluster(Engine):
    def check_one_leader(self, max_ticks: int = 300) -> int:
        """Run until one leader is known to a majority of its configuration's voters at its
        term; return it."""
        found: list[int] = []

        def settled() -> bool:
            leader = self.leader()
            if leader is None:
                return False
            raft = self.raft(leader)
            voters = raft.membership.all_voters() or frozenset(self.nodes)
            agree = 0
            for voter in voters:
                other = self.nodes.get(voter)
                if other is not None and other.raft is not None:
                    agree += other.raft.term == raft.term and other.raft.leader_id == leader
            if agree * 2 > len(voters):
                found[:] = [leader]
                return True
            return False

        if not self.run_until(settled, max_ticks):
            raise LivenessFailure(f"no leader emerged within {max_ticks} ticks")
        return found[0]

    def propose(self, node_id: int, data: bytes) -> tuple[int, int]:
        raft = self.raft(node_id)
        term, index = raft.propose(data)
        self._drain(self.nodes[node_id])
        return term, index

    def read(self, node_id: int) -> int:
        """Ask ``node_id`` for a linearizable read; returns the context to look for."""
        raft = self.raft(node_id)
        self._next_context += 1
        context = self._next_context
        self.checker.note_read_asked(context)
        try:
            raft.read_index(context)
        except CoreError:
            self.checker.forget_read(context)
            raise
        self._drain(self.nodes[node_id])
        return context

    def transfer(self, leader_id: int, target: int) -> None:
        self.raft(leader_id).transfer_leader(NodeId(target))
        self._drain(self.nodes[leader_id])

    def campaign(self, node_id: int) -> None:
        self.raft(node_id).campaign()
        self._drain(self.nodes[node_id])

    def n_committed(self, index: int, data: bytes) -> int:
        """How many nodes applied ``data`` at ``index``."""
        return sum(
            1
            for n in self.nodes.values()
            if len(n.applied) >= index and n.applied[index - 1].data == data
        )

    def majority(self) -> int:
        """A majority of the newest leader's voters (of all nodes if there is no leader)."""
        leader = self.leader()
        voters = self.raft(leader).membership.voters if leader is not None else self.nodes
        return len(voters) // 2 + 1

    def one(self, data: bytes, expected: int | None = None, max_ticks: int = 600) -> int:
        """Propose ``data`` until it is applied by ``expected`` nodes (default: a majority of
        the leader's voters), retrying through leader changes (MIT 6.5840's ``one``)."""
        deadline = self.now + max_ticks
        while self.now < deadline:
            leader = self.leader()
            index = None
            if leader is not None:
                try:
                    _, index = self.propose(leader, data)
                except CoreError:
                    index = None
            if index is None:
                self.run(1)
                continue
            give_up = min(deadline, self.now + 4 * self.config_args["election_ticks"])
            while self.now < give_up:
                need = expected if expected is not None else self.majority()
                if self.n_committed(index, data) >= need:
                    self.acknowledged[index] = data
                    return index
                self.run(1)
        raise LivenessFailure(f"one({data!r}) did not reach {expected} nodes in {max_ticks} ticks")

    # ================================================================ membership changes
    def join(self, node_id: int) -> SimNode:
        """Start a brand-new node with an empty log and no configuration: it only listens."""
        self.trace.append(f"{self.now}: join {node_id}")
        return self.add_node(node_id, Membership(voters=frozenset()))

    def change_membership(self, target: Membership, max_ticks: int = 600) -> int:
        """Propose ``target`` on the leader and run until the leader uses it and has committed
        everything (the joint phase included). Returns the leader that finished it."""
        deadline = self.now + max_ticks
        proposed = False
        while self.now < deadline:
            leader = self.leader()
            if leader is not None:
                raft = self.raft(leader)
                done = (
                    raft.membership == target
                    and raft.commit_index == raft.last_index
                    and raft.applied_index == raft.commit_index
                )
                if done and proposed:
                    return leader
                if not proposed and raft.membership != target:
                    try:
                        raft.propose_conf_change(target)
                        proposed = True
                        self.trace.append(f"{self.now}: propose {target.describe()} on {leader}")
                        self._drain(self.nodes[leader])
                    except CoreError:
                        pass
                elif raft.membership == target:
                    proposed = True
            self.tick()
        raise LivenessFailure(f"membership {target.describe()} not reached in {max_ticks} ticks")

    def caught_up(self, node_ids: Iterable[int], max_ticks: int = 600) -> None:
        """Run until every one of ``node_ids`` applied what the leader has committed."""
        ids = list(node_ids)

        def done() -> bool:
            leader = self.leader()
            if leader is None:
                return False
            top = self.raft(leader).commit_index
            return all(len(self.nodes[i].applied) >= top for i in ids)

        if not self.run_until(done, max_ticks):
            raise LivenessFailure(f"nodes {ids} did not catch up within {max_ticks} ticks")
