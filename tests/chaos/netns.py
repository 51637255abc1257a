"""Real network partitions for chaos tests: Linux network namespaces, a bridge, and iptables.

Layout of one run (``run_id`` = owner pid in 6 hex digits + 4 random hex digits):

    namespace rkv-<run_id>-br   bridge br0, one veth port v<i> per node (and vh for the host link)
    namespace rkv-<run_id>-n<i> eth0 = 10.77.<subnet>.<i+1>/24, lo up; node i's processes run here
    root namespace              nothing; with host_link=True: veth rkvh<run_id> = 10.77.<subnet>.254

Rules kept here:
- Every address lives only inside namespaces this module creates (10.77.X.0/24); nothing is
  routed anywhere else. The root namespace is untouched unless ``host_link=True``, which adds one
  veth so the test process itself can reach the nodes.
- Faults are iptables DROP rules *inside the node namespaces* (INPUT chain, by source address), so
  a partition is a real one for TCP. Each rule added is remembered; ``heal`` deletes exactly those.
- Cleanup always runs (context manager, try/finally, atexit), kills what still runs inside the
  namespaces (the harness started it), and deletes them; the veths go with them. Names carry the
  owner's pid so ``cleanup_stale()`` can remove what a crashed run left, without touching live runs.
- Every external command has a timeout; nothing here waits unboundedly.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

PREFIX = "rkv-"
HOST_LINK_PREFIX = "rkvh"
_RUN_RE = re.compile(r"^rkvh?-?([0-9a-f]{6})([0-9a-f]{4})(?:-|$)")
COMMAND_TIMEOUT_S = 15.0


class NetnsError(RuntimeError):
    """A namespace, link or firewall command failed (the message carries its stderr)."""


def harness_available() -> str | None:
    """None if this machine can run the harness, else the reason it cannot (for pytest.skip)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install -y iproute2 iptables)"
    return None


def make_run_id(pid: int | None = None) -> str:
    return f"{(os.getpid() if pid is None else pid) & 0xFFFFFF:06x}{secrets.randbelow(1 << 16):04x}"


def _cmd(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NetnsError(f"timed out after {COMMAND_TIMEOUT_S}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def list_namespaces() -> list[str]:
    # `ip netns list` prints "name" or "name (id: N)".
    return [line.split()[0] for line in _cmd(["ip", "netns", "list"]).splitlines() if line.strip()]


def list_links() -> list[str]:
    names = []
    for line in _cmd(["ip", "-o", "link", "show"]).splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _kill_namespace_processes(namespace: str) -> None:
    """SIGKILL whatever still runs inside one of our namespaces (only the harness starts those)."""
    out = _cmd(["ip", "netns", "pids", namespace], check=False)
    for token in out.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(token), signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Remove namespaces and host links left by runs whose owner process is gone; return names."""
    removed = []
    # Host links first: deleting a namespace also tears down the veth whose peer lives in it,
    # but the kernel does that asynchronously, so a later listing may or may not show the link.
    for name in list_links():
        match = _RUN_RE.match(name)
        if name.startswith(HOST_LINK_PREFIX) and match and not _pid_alive(int(match.group(1), 16)):
            _cmd(["ip", "link", "del", name], check=False)
            removed.append(name)
    for name in list_namespaces():
        match = _RUN_RE.match(name)
        if name.startswith(PREFIX) and match and not _pid_alive(int(match.group(1), 16)):
            _kill_namespace_processes(name)
            _cmd(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


@dataclass(frozen=True, slots=True)
class Node:
    index: int
    namespace: str
    address: str


# One firewall rule: the arguments after "-A"/"-D" in node ``node``'s filter table.
Rule = tuple[str, ...]


class Cluster:
    """N network namespaces on one private bridge, with partitions, loss and cleanup.

    Use as a context manager: ``with Cluster(3) as net: net.popen(0, [...]); net.partition(...)``.
    Node indices are 0..n-1. ``exec_argv`` wraps a command so it runs inside a node's namespace;
    ``ip netns exec`` execs in place, so a Popen's pid *is* the node process (kill -9 / SIGSTOP it
    directly).
    """

    def __init__(
        self,
        n_nodes: int,
        *,
        run_id: str | None = None,
        subnet: int | None = None,
        host_link: bool = False,
    ) -> None:
        if not 1 <= n_nodes <= 200:
            raise ValueError(f"n_nodes must be in 1..200, got {n_nodes}")
        self.run_id = run_id or make_run_id()
        self.subnet_octet = subnet if subnet is not None else self._pick_subnet(host_link)
        self.prefix = f"10.77.{self.subnet_octet}"
        self.bridge_namespace = f"{PREFIX}{self.run_id}-br"
        self.nodes = [
            Node(index=i, namespace=f"{PREFIX}{self.run_id}-n{i}", address=f"{self.prefix}.{i + 1}")
            for i in range(n_nodes)
        ]
        self.host_link = f"{HOST_LINK_PREFIX}{self.run_id}" if host_link else None
        self.host_address = f"{self.prefix}.254" if host_link else None
        self._rules: dict[int, list[Rule]] = {}
        self._created: list[str] = []
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.setup()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def setup(self) -> None:
        atexit.register(self.cleanup)
        br = self.bridge_namespace
        self._add_namespace(br)
        _cmd(["ip", "-n", br, "link", "add", "br0", "type", "bridge"])
        _cmd(["ip", "-n", br, "link", "set", "br0", "up"])
        for node in self.nodes:
            self._add_namespace(node.namespace)
            port = f"v{node.index}"
            _cmd(["ip", "-n", br, "link", "add", port, "type", "veth",
                  "peer", "name", "eth0", "netns", node.namespace])
            _cmd(["ip", "-n", br, "link", "set", port, "master", "br0", "up"])
            _cmd(["ip", "-n", node.namespace, "addr", "add", f"{node.address}/24", "dev", "eth0"])
            _cmd(["ip", "-n", node.namespace, "link", "set", "eth0", "up"])
        if self.host_link is not None:
            _cmd(["ip", "link", "add", self.host_link, "type", "veth",
                  "peer", "name", "vh", "netns", br])
            self._created.append(f"link:{self.host_link}")
            _cmd(["ip", "-n", br, "link", "set", "vh", "master", "br0", "up"])
            _cmd(["ip", "addr", "add", f"{self.host_address}/24", "dev", self.host_link])
            _cmd(["ip", "link", "set", self.host_link, "up"])

    def _add_namespace(self, name: str) -> None:
        _cmd(["ip", "netns", "add", name])
        self._created.append(name)
        _cmd(["ip", "-n", name, "link", "set", "lo", "up"])

    def cleanup(self) -> None:
        """Idempotent: kill what runs inside, delete links and namespaces. Never raises."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.cleanup)
        errors = []
        for name in reversed(self._created):
            try:
                if name.startswith("link:"):
                    _cmd(["ip", "link", "del", name[5:]], check=False)
                else:
                    _kill_namespace_processes(name)
                    _cmd(["ip", "netns", "del", name], check=False)
            except NetnsError as exc:  # keep going: remove as much as possible
                errors.append(str(exc))
        self._rules.clear()
        if errors:
            sys.stderr.write("netns cleanup problems:\n  " + "\n  ".join(errors) + "\n")

    def names(self) -> list[str]:
        """Every namespace and root-namespace link name this run owns (for leak checks)."""
        names = [self.bridge_namespace, *(n.namespace for n in self.nodes)]
        return [*names, self.host_link] if self.host_link else names

    @staticmethod
    def _pick_subnet(host_link: bool) -> int:
        # Runs never see each other's namespaces, so only a host link (a route in the root
        # namespace) needs a subnet nobody else on this machine uses.
        if not host_link:
            return 1 + secrets.randbelow(254)
        used = _cmd(["ip", "-4", "-o", "addr", "show"]) + _cmd(["ip", "-4", "route", "show"])
        taken = {int(m) for m in re.findall(r"10\.77\.(\d+)\.", used)}
        free = [x for x in range(1, 255) if x not in taken]
        if not free:
            raise NetnsError("no free 10.77.X.0/24 subnet for a host link")
        return free[secrets.randbelow(len(free))]

    # --- running things inside nodes -------------------------------------------------------

    def address(self, node: int) -> str:
        return self.nodes[node].address

    def exec_argv(self, node: int, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.nodes[node].namespace, *argv]

    def popen(self, node: int, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside a node's namespace (its pid is the process itself)."""
        return subprocess.Popen(self.exec_argv(node, argv), **kwargs)

    def run(
        self, node: int, argv: Sequence[str], *, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.exec_argv(node, argv), capture_output=True, text=True, timeout=timeout_s,
            check=False,
        )

    def can_connect(self, src: int, address: str, port: int, timeout_s: float = 0.5) -> bool:
        """Can a TCP connection be opened from inside node ``src`` within ``timeout_s``?"""
        probe = (
            "import socket,sys\n"
            f"s=socket.create_connection(({address!r},{port}),timeout={timeout_s})\n"
            "s.close()\n"
        )
        try:
            proc = self.run(src, [sys.executable, "-c", probe], timeout_s=timeout_s + 10)
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    # --- faults ------------------------------------------------------------------------------

    def partition(self, groups: Sequence[Iterable[int]]) -> None:
        """Nodes in different groups cannot exchange packets; every node in exactly one group."""
        sets = [set(g) for g in groups]
        listed = [i for g in sets for i in g]
        if sorted(listed) != list(range(len(self.nodes))):
            raise ValueError(f"groups must cover every node exactly once: {groups!r}")
        group_of = {i: n for n, g in enumerate(sets) for i in g}
        adds: dict[int, list[Rule]] = {}
        for dst in range(len(self.nodes)):
            for src in range(len(self.nodes)):
                if group_of[src] != group_of[dst]:
                    adds.setdefault(dst, []).append(self._drop_from(src))
        self._add_rules(adds)

    def isolate(self, node: int) -> None:
        self.partition([[node], [i for i in range(len(self.nodes)) if i != node]])

    def one_way_drop(self, src: int, dst: int) -> None:
        """Packets from ``src`` never arrive at ``dst``; ``dst`` -> ``src`` still flows."""
        self._add_rules({dst: [self._drop_from(src)]})

    def lossy_link(self, src: int, dst: int, probability: float) -> None:
        """Drop each packet from ``src`` to ``dst`` with ``probability`` (iptables statistic)."""
        if not 0.0 < probability <= 1.0:
            raise ValueError(f"probability must be in (0, 1], got {probability}")
        rule = (*self._drop_from(src)[:-2], "-m", "statistic", "--mode", "random",
                "--probability", f"{probability:.6f}", "-j", "DROP")
        self._add_rules({dst: [rule]})

    def lossy_node(self, node: int, probability: float) -> None:
        """Random loss on every link to and from ``node``."""
        for other in range(len(self.nodes)):
            if other != node:
                self.lossy_link(other, node, probability)
                self.lossy_link(node, other, probability)

    def heal(self) -> None:
        """Delete exactly the rules this harness added, newest first."""
        pending = {node: list(reversed(rules)) for node, rules in self._rules.items() if rules}
        for node, rules in pending.items():
            self._restore(node, "-D", rules)
            self._rules[node] = []

    def active_rules(self) -> Mapping[int, list[Rule]]:
        """node -> rules currently installed by this harness (describes the fault in force)."""
        return {node: list(rules) for node, rules in self._rules.items() if rules}

    def iptables_rules(self, node: int) -> list[str]:
        """What the kernel actually has in the node's INPUT chain (for tests and diagnostics)."""
        return self.run(node, ["iptables", "-w", "5", "-S", "INPUT"]).stdout.splitlines()

    def _drop_from(self, src: int) -> Rule:
        return ("INPUT", "-s", f"{self.nodes[src].address}/32", "-j", "DROP")

    def _add_rules(self, adds: Mapping[int, list[Rule]]) -> None:
        for node, rules in adds.items():
            self._restore(node, "-A", rules)
            # Remembered only once installed: heal must never delete a rule it did not add.
            self._rules.setdefault(node, []).extend(rules)

    def _restore(self, node: int, verb: str, rules: Sequence[Rule]) -> None:
        # One iptables-restore per namespace applies the batch atomically and fast.
        body = "".join(f"{verb} {' '.join(rule)}\n" for rule in rules)
        _cmd(
            self.exec_argv(node, ["iptables-restore", "-w", "5", "--noflush"]),
            stdin=f"*filter\n{body}COMMIT\n",
        )


def wait_until(
    predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.05
) -> bool:
    """Poll ``predicate()`` until true or the deadline passes; returns its last verdict."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
