"""The namespace harness against the real kernel: reachability, partitions, loss, cleanup."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.chaos.netns import (
    Cluster,
    cleanup_stale,
    list_links,
    list_namespaces,
    make_run_id,
    wait_until,
)

PORT = 7000

ECHO_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
while True:
    c, _ = s.accept()
    data = c.recv(1024)
    c.sendall(data)
    c.close()
"""

UDP_RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(float(sys.argv[3]))
try:
    print(s.recv(100).decode())
except TimeoutError:
    print("nothing")
"""

UDP_SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(10):  # a few copies: the receiver may still be binding
    s.sendto(b"hello", (sys.argv[1], int(sys.argv[2]))); time.sleep(0.05)
"""


def start_echo(net: Cluster, node: int) -> subprocess.Popen[bytes]:
    proc = net.popen(node, [sys.executable, "-c", ECHO_SERVER, net.address(node), str(PORT)])
    # Poll from inside the node itself until it listens (no fixed sleep).
    assert wait_until(lambda: net.can_connect(node, net.address(node), PORT), timeout_s=10)
    return proc


def reachable(net: Cluster, src: int, dst: int) -> bool:
    return net.can_connect(src, net.address(dst), PORT, timeout_s=0.5)


def udp_delivered(net: Cluster, src: int, dst: int, port: int) -> bool:
    receiver = net.popen(
        dst,
        [sys.executable, "-c", UDP_RECEIVE, net.address(dst), str(port), "1.0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        net.run(src, [sys.executable, "-c", UDP_SEND, net.address(dst), str(port)])
        out: str = receiver.communicate(timeout=10)[0]
    finally:
        receiver.kill()
        receiver.wait(timeout=10)
    return out.strip() == "hello"


@pytest.fixture
def net3(netns_cluster: Callable[..., Cluster]) -> Iterator[Cluster]:
    net = netns_cluster(3)
    for node in range(3):
        start_echo(net, node)
    yield net


def test_partition_heal_and_one_way_drop(net3: Cluster) -> None:
    net = net3
    assert all(reachable(net, a, b) for a in range(3) for b in range(3) if a != b)

    net.partition([[0], [1, 2]])
    assert not reachable(net, 1, 0) and not reachable(net, 0, 2)
    assert reachable(net, 1, 2) and reachable(net, 2, 1)  # the majority side still talks
    assert sum("DROP" in r for r in net.iptables_rules(0)) == 2

    net.heal()
    assert all("DROP" not in r for node in range(3) for r in net.iptables_rules(node))
    assert reachable(net, 1, 0) and reachable(net, 0, 2)

    net.one_way_drop(0, 1)
    assert not udp_delivered(net, 0, 1, 7101)
    assert udp_delivered(net, 1, 0, 7102)  # the other direction still flows
    assert reachable(net, 2, 1) and reachable(net, 0, 2)
    net.heal()
    assert udp_delivered(net, 0, 1, 7103)


def test_isolate_and_random_loss(net3: Cluster) -> None:
    net = net3
    net.isolate(2)
    assert not reachable(net, 0, 2) and not reachable(net, 2, 1) and reachable(net, 0, 1)
    net.heal()
    net.lossy_link(0, 1, probability=1.0)  # certain loss: deterministic to assert
    assert not reachable(net, 0, 1)
    assert any("--probability 1" in r for r in net.iptables_rules(1))
    net.heal()
    net.lossy_node(2, probability=0.3)
    assert sum("statistic" in r for node in range(3) for r in net.iptables_rules(node)) == 4
    net.heal()
    assert not any(net.active_rules().values())
    assert reachable(net, 0, 1) and reachable(net, 1, 2)


def test_partition_refuses_groups_that_do_not_cover_every_node_once(net3: Cluster) -> None:
    with pytest.raises(ValueError, match="exactly once"):
        net3.partition([[0], [1]])
    with pytest.raises(ValueError, match="exactly once"):
        net3.partition([[0, 1], [1, 2]])


def test_everything_is_removed_on_exit_even_after_an_error(netns_ready: None) -> None:
    net = Cluster(2, host_link=True)
    with pytest.raises(RuntimeError, match="boom"), net:
        server = start_echo(net, 0)
        assert net.host_address is not None
        assert net.host_link in list_links()
        # The host link lets the test process itself reach node addresses.
        assert wait_until(lambda: _host_connects(net.address(0)), timeout_s=5)
        net.partition([[0], [1]])
        raise RuntimeError("boom")
    assert server.wait(timeout=10) is not None  # processes inside were killed
    leftovers = set(net.names()) & (set(list_namespaces()) | set(list_links()))
    assert not leftovers


def _host_connects(address: str) -> bool:
    import socket

    try:
        socket.create_connection((address, PORT), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_cleanup_stale_removes_a_crashed_runs_leftovers(netns_ready: None) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=10)  # its pid now names a run whose owner is gone
    crashed = Cluster(2, run_id=make_run_id(dead.pid), host_link=True)
    crashed.setup()  # and never cleaned up, as if the owner had been killed
    try:
        alive = Cluster(1)
        with alive:
            removed = cleanup_stale()
            assert set(crashed.names()) <= set(removed)
            assert alive.nodes[0].namespace in list_namespaces()  # a live run is left alone
        assert not set(crashed.names()) & (set(list_namespaces()) | set(list_links()))
    finally:
        crashed.cleanup()
