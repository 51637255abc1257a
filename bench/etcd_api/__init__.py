"""Python stubs for bench/etcd_api/etcd_kv.proto, generated with grpcio-tools on first use.

The generated modules go to a temporary directory (never into the repository, removed at exit)
and are imported from there; ``load()`` returns the ``etcd_kv_pb2`` module.
"""

from __future__ import annotations

import atexit
import importlib
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
PROTO = HERE / "etcd_kv.proto"
_loaded: ModuleType | None = None


def load(out_dir: Path | None = None) -> ModuleType:
    """Generate (once per process) and import the etcd message module."""
    global _loaded  # noqa: PLW0603 - a per-process cache of a generated module
    if _loaded is not None:
        return _loaded
    from grpc_tools import protoc

    out = out_dir
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="raftkv-bench-etcd-pb-"))
        atexit.register(shutil.rmtree, out, True)
    out.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        ["protoc", f"-I{HERE}", f"--python_out={out}", str(PROTO)]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
    sys.path.insert(0, str(out))
    try:
        _loaded = importlib.import_module("etcd_kv_pb2")
    finally:
        sys.path.remove(str(out))
    return _loaded
