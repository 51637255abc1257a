"""A read round started under a joint configuration ends when the configuration shrinks.

ReadIndex confirms leadership with acknowledgements from a quorum of the configuration in
force. A round sent while joint (old voters {1..5}, new {1, 2}) may lack the old half's quorum;
once the leave entry makes {1, 2} the configuration, the acknowledgements already in suffice,
and the dropped voters will never answer. (Found by the simulator, membership seed 3672.)
"""

from __future__ import annotations

from raftkv.core.membership import Membership
from raftkv.core.messages import AppendRequest
from tests.core.driver import only
from tests.core.test_quorum_first import ack, steady_leader


def test_a_read_round_sent_while_joint_ends_when_the_configuration_shrinks() -> None:
    d = steady_leader((1, 2, 3, 4, 5), quorum_first=False)
    d.node.propose_conf_change(Membership(voters=frozenset({1, 2})))  # joint entry 2
    d.drain()
    d.node.read_index(77)
    seq = max(m.seq for m in only(d.drain(), AppendRequest))
    d.step(ack(2, 2, seq))  # the new half's quorum; the old half has 2 of 5
    assert not [r for rd in d.readies for r in rd.reads]
    d.step(ack(3, 2))  # commits the joint entry: the leader appends the leave
    assert d.node.membership == Membership(voters=frozenset({1, 2}))
    assert [r.context for rd in d.readies for r in rd.reads] == [77]
