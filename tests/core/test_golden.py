"""Runs every golden interaction script in tests/core/testdata (see :mod:`tests.core.golden`).

Rewrite the expected outputs after an intended change with
``RAFTKV_GOLDEN_REWRITE=1 pytest tests/core/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.core.golden import run_file

TESTDATA = Path(__file__).parent / "testdata"


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda p: p.stem)
def test_golden_script(path: Path) -> None:
    rewrite = os.environ.get("RAFTKV_GOLDEN_REWRITE") == "1"
    mismatches = run_file(path, rewrite)
    report = "\n\n".join(
        f"$ {cmd}\n--- expected\n{want}\n--- got\n{got}" for cmd, want, got in mismatches
    )
    assert not mismatches, f"{path.name} (rewrite with RAFTKV_GOLDEN_REWRITE=1):\n{report}"
