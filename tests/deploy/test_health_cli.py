"""`raftkv health`, the container health check: exit codes against real nodes, and its defaults."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from raftkv.cli.health import (
    EXIT_NOT_SERVING,
    EXIT_SERVING,
    EXIT_UNREACHABLE,
    default_endpoint,
    health,
)
from tests.deploy.harness import LocalCluster, free_ports, wait_for


def check(endpoint: str) -> tuple[int, str]:
    result = CliRunner().invoke(health, ["--endpoint", endpoint, "--timeout", "2"])
    return result.exit_code, result.output


def test_the_raftkv_command_has_health() -> None:
    """The Dockerfile's HEALTHCHECK and compose run `raftkv health`."""
    from raftkv.cli.server_main import main

    assert "health" in main.commands, (
        "register it in raftkv/cli/server_main.py: "
        "from raftkv.cli.health import health; main.add_command(health)"
    )


def test_default_endpoint_follows_the_listen_address() -> None:
    assert default_endpoint({}) == "127.0.0.1:7001"
    assert default_endpoint({"RAFTKV_LISTEN": "0.0.0.0:7003"}) == "127.0.0.1:7003"
    assert default_endpoint({"RAFTKV_LISTEN": "[::]:7002"}) == "127.0.0.1:7002"
    assert default_endpoint({"RAFTKV_LISTEN": "10.1.2.3:7005"}) == "10.1.2.3:7005"
    explicit = {"RAFTKV_HEALTH_ENDPOINT": "db:1", "RAFTKV_LISTEN": "0.0.0.0:7003"}
    assert default_endpoint(explicit) == "db:1"


def test_exit_codes_against_real_nodes(tmp_path: Path) -> None:
    (unused,) = free_ports(1)
    code, output = check(f"127.0.0.1:{unused}")
    assert code == EXIT_UNREACHABLE and "unreachable" in output

    cluster = LocalCluster(tmp_path / "cluster")
    lone = cluster.node(1)
    cluster.start(lone)  # one of three: no quorum, no leader, so NOT_SERVING
    try:
        code, output = wait_for(
            lambda: (r := check(lone.address))[0] != EXIT_UNREACHABLE and r,
            20,
            "the lone node answering health checks",
        )
        assert code == EXIT_NOT_SERVING and "NOT_SERVING" in output
        for node in cluster.nodes[1:]:
            cluster.start(node)
        for node in cluster.nodes:
            wait_for(
                lambda n=node: check(n.address)[0] == EXIT_SERVING, 30, f"node {node.id} SERVING"
            )
    finally:
        cluster.stop()
