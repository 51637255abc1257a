"""``raftkv serve`` flags: every one also read from RAFTKV_<FLAG>; bad ones are one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from raftkv.cli.server_main import main

CLUSTER = "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"


def test_flags_come_from_the_environment(tmp_path: Path) -> None:
    env = {
        "RAFTKV_ID": "9",
        "RAFTKV_LISTEN": "127.0.0.1:7009",
        "RAFTKV_CLUSTER": CLUSTER,
        "RAFTKV_DATA_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(main, ["serve"], env=env)
    assert result.exit_code == 2
    assert "--id 9 is not in --cluster (members: [1, 2, 3])" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", "1=nowhere"], "is not HOST:PORT"),
        (["--cluster", "1=127.0.0.1:1,1=127.0.0.1:2"], "listed twice"),
        (["--heartbeat-ms", "55"], "--heartbeat-ms must be a multiple of 10"),
        (["--election-timeout-ms", "50"], "--election-timeout-ms must exceed --heartbeat-ms"),
        (["--listen", "7001"], "--listen: '7001' is not HOST:PORT"),
    ],
)
def test_bad_flags_are_one_line_with_exit_code_two(
    tmp_path: Path, args: list[str], message: str
) -> None:
    base = [
        "serve",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:7001",
        "--cluster",
        CLUSTER,
        "--data-dir",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
