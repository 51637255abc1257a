"""raftkv-cli through click's CliRunner against the fake cluster: output, json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner, Result

from raftkv.cli.client_main import main
from tests.client.fakes import FakeCluster, Fault, unused_address


def cli(cluster: FakeCluster, *args: str, stdin: bytes | None = None, **env: str) -> Result:
    endpoints = ",".join(cluster.addresses)
    return CliRunner().invoke(
        main,
        ["--endpoints", endpoints, "--timeout", "2", *args],
        input=stdin,
        env=env or None,
    )


def assert_one_line_error(result: Result, code: int, text: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_put_then_get(cluster: FakeCluster) -> None:
    result = cli(cluster, "put", "a", "1")
    assert (result.exit_code, result.stdout) == (0, "OK\n")
    result = cli(cluster, "get", "a")
    assert (result.exit_code, result.stdout_bytes) == (0, b"1")


def test_json_mode(cluster: FakeCluster) -> None:
    assert json.loads(cli(cluster, "-w", "json", "put", "a", "1").stdout) == {"ok": True}
    assert json.loads(cli(cluster, "-w", "json", "get", "a").stdout) == {"key": "a", "value": "1"}
    cluster.state.store[b"bin"] = b"\xff\x00"
    assert json.loads(cli(cluster, "-w", "json", "get", "bin").stdout) == {
        "key": "bin",
        "value_base64": "/wA=",
    }
    assert json.loads(cli(cluster, "-w", "json", "delete", "a").stdout) == {"deleted": True}


def test_write_out_from_environment(cluster: FakeCluster) -> None:
    cluster.state.store[b"a"] = b"1"
    result = cli(cluster, "get", "a", RAFTKV_WRITE_OUT="json")
    assert json.loads(result.stdout) == {"key": "a", "value": "1"}


def test_endpoints_from_environment(cluster: FakeCluster) -> None:
    cluster.state.store[b"a"] = b"1"
    runner = CliRunner()
    result = runner.invoke(main, ["get", "a"], env={"RAFTKV_ENDPOINTS": cluster.addresses[1]})
    assert (result.exit_code, result.stdout) == (0, "1")


def test_value_from_stdin_is_binary_safe(cluster: FakeCluster) -> None:
    blob = bytes(range(256)) * 4
    result = cli(cluster, "put", "blob", "-", stdin=blob)
    assert result.exit_code == 0
    assert cluster.state.store[b"blob"] == blob
    assert cli(cluster, "get", "blob").stdout_bytes == blob


def test_get_missing_key(cluster: FakeCluster) -> None:
    assert_one_line_error(cli(cluster, "get", "nope"), 1, "key not found: nope")
    assert_one_line_error(cli(cluster, "-w", "json", "get", "nope"), 1, "key not found")


def test_delete_missing_key(cluster: FakeCluster) -> None:
    assert_one_line_error(cli(cluster, "delete", "nope"), 1, "key not found")


def test_cas(cluster: FakeCluster) -> None:
    assert cli(cluster, "cas", "k", "v1", "--absent").exit_code == 0
    assert cli(cluster, "cas", "k2", "", "v1", "--absent").exit_code == 0
    assert_one_line_error(cli(cluster, "cas", "k", "v2", "--absent"), 1, "compare-and-swap failed")
    assert_one_line_error(cli(cluster, "cas", "k", "wrong", "v2"), 1, "compare-and-swap failed")
    result = cli(cluster, "-w", "json", "cas", "k", "v1", "v2")
    assert (result.exit_code, json.loads(result.stdout)) == (0, {"swapped": True})
    assert cluster.state.store[b"k"] == b"v2"


def test_cas_usage_errors(cluster: FakeCluster) -> None:
    assert_one_line_error(cli(cluster, "cas", "k", "only-one"), 2, "KEY EXPECTED NEW")
    assert_one_line_error(cli(cluster, "cas", "k", "a", "b", "--absent"), 2, "--absent")


def test_scan(cluster: FakeCluster) -> None:
    for key in ["p/1", "p/2", "p/3", "q/1"]:
        cluster.state.store[key.encode()] = key.upper().encode()
    result = cli(cluster, "scan", "p/")
    assert result.stdout == "p/1\tP/1\np/2\tP/2\np/3\tP/3\n"
    result = cli(cluster, "-w", "json", "scan", "--limit", "2")
    assert json.loads(result.stdout) == [
        {"key": "p/1", "value": "P/1"},
        {"key": "p/2", "value": "P/2"},
    ]
    assert json.loads(cli(cluster, "-w", "json", "scan", "zzz").stdout) == []


def test_status_table_with_a_node_down(cluster: FakeCluster) -> None:
    cluster.kill(2)
    result = cli(cluster, "status")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "ADDRESS",
        "ROLE",
        "TERM",
        "LEADER",
        "COMMIT",
        "APPLIED",
        "LAG",
    ]
    assert lines[1].split() == ["1", cluster.addresses[0], "leader", "3", "1", "10", "10", "0"]
    assert lines[2].split() == ["2", cluster.addresses[1], "follower", "3", "1", "10", "8", "2"]
    assert lines[3].split() == ["3", cluster.addresses[2], "down", "-", "-", "-", "-", "-"]


def test_status_marks_the_follower_the_leader_calls_lazy(cluster: FakeCluster) -> None:
    result = cli(cluster, "status")
    assert result.exit_code == 0, result.stderr
    roles = [line.split()[2:-5] for line in result.stdout.splitlines()[1:]]
    assert roles == [["leader"], ["follower"], ["follower", "(lazy)"]]


def test_status_json(cluster: FakeCluster) -> None:
    cluster.kill(1)
    nodes = json.loads(cli(cluster, "-w", "json", "status").stdout)
    assert [(n["id"], n["up"]) for n in nodes] == [(1, True), (2, False), (3, True)]
    assert nodes[0]["role"] == "leader" and nodes[2]["lag"] == 2
    assert [nodes[0]["lazy"], nodes[2]["lazy"]] == [False, True]
    assert nodes[1]["error"]


def test_status_all_down_exits_unavailable() -> None:
    result = CliRunner().invoke(
        main, ["--endpoints", f"{unused_address()},{unused_address()}", "status"]
    )
    assert result.exit_code == 3
    assert "down" in result.stdout  # the table still shows them
    assert result.stderr.count("\n") == 1 and "unavailable" in result.stderr


def test_unavailable_exit_code() -> None:
    result = CliRunner().invoke(
        main, ["--endpoints", unused_address(), "--timeout", "0.3", "put", "a", "1"]
    )
    assert_one_line_error(result, 3, "unavailable:")


def test_timeout_exit_code(cluster: FakeCluster) -> None:
    cluster.inject(*[Fault("Put", "hang")] * 10)
    assert_one_line_error(cli(cluster, "--timeout", "0.3", "put", "a", "1"), 4, "outcome unknown")


def test_invalid_argument_exit_code(cluster: FakeCluster) -> None:
    assert_one_line_error(
        cli(cluster, "put", "", "1"), 5, "invalid argument: key must not be empty"
    )
    cluster.inject(Fault("Get", "abort", grpc.StatusCode.INVALID_ARGUMENT, "bad\nthing"))
    assert_one_line_error(cli(cluster, "get", "k"), 5, "invalid argument: bad thing")


def test_server_error_exit_code(cluster: FakeCluster) -> None:
    cluster.inject(Fault("Get", "abort", grpc.StatusCode.INTERNAL, "boom"))
    assert_one_line_error(cli(cluster, "get", "k"), 6, "boom")


def test_usage_errors_are_one_line(cluster: FakeCluster) -> None:
    assert_one_line_error(cli(cluster, "frobnicate"), 2, "No such command")
    assert_one_line_error(cli(cluster, "put", "a"), 2, "Missing argument")
    assert_one_line_error(cli(cluster, "-w", "xml", "get", "a"), 2, "xml")
    assert_one_line_error(cli(cluster, "--timeout", "0", "get", "a"), 2, "--timeout")


def test_help_lists_exit_codes() -> None:
    for args in (["--help"], ["get", "--help"], ["snapshot", "save", "--help"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0
        assert "Exit codes:" in result.stdout and "4  timeout" in result.stdout


def test_leader_transfer(cluster: FakeCluster) -> None:
    result = cli(cluster, "leader", "transfer", "2")
    assert (result.exit_code, result.stdout) == (0, "leader is now node 2\n")
    assert cluster.state.transfers == [2]


def test_snapshot_save(cluster: FakeCluster, tmp_path: Path) -> None:
    path = tmp_path / "b.rkv"
    result = cli(cluster, "-w", "json", "snapshot", "save", str(path))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["size_bytes"] == 7
    assert path.exists()


def test_snapshot_save_to_a_bad_path(cluster: FakeCluster, tmp_path: Path) -> None:
    result = cli(cluster, "snapshot", "save", str(tmp_path / "no" / "such" / "dir" / "f"))
    assert_one_line_error(result, 6, "No such file or directory")


@pytest.mark.parametrize("args", [["--version"], ["-h"]])
def test_version_and_help(args: list[str]) -> None:
    assert CliRunner().invoke(main, args).exit_code == 0
