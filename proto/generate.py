"""Regenerate raftkv/pb/ from proto/*.proto: ``python proto/generate.py`` (``--check`` in CI).

The generated modules are committed so ``pip install .`` needs no code generation. protoc writes
bare ``import raft_pb2`` lines; they are rewritten to package imports here, in one place.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "raftkv" / "pb"
_BARE_IMPORT = re.compile(r"^import (\w+_pb2) as ", re.MULTILINE)


def generate(out_dir: Path) -> None:
    protos = sorted(str(p.name) for p in PROTO_DIR.glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in out_dir.glob("*_pb2*.py"):
        text = _BARE_IMPORT.sub(r"from raftkv.pb import \1 as ", path.read_text())
        path.write_text(text)
    header = '"""Generated from proto/ by proto/generate.py; do not edit."""\n'
    (out_dir / "__init__.py").write_text(header)


def stale_modules() -> list[str]:
    """Names of committed modules whose descriptors differ from what proto/ defines now.

    Compares descriptors, not generated text, so a newer grpcio-tools does not count as stale.
    """
    sys.path.insert(0, str(ROOT))  # check this checkout's modules, not an installed copy
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        protos = sorted(p.name for p in PROTO_DIR.glob("*.proto"))
        args = ["grpc_tools.protoc", f"-I{PROTO_DIR}", f"--descriptor_set_out={out}", *protos]
        if protoc.main(args):
            raise SystemExit("protoc failed")
        fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    for file in fresh.file:  # generated modules embed descriptors without json names
        for message in _all_messages(file.message_type):
            for field in message.field:
                field.ClearField("json_name")
    stale = []
    for file in fresh.file:
        module_name = "raftkv.pb." + file.name.removesuffix(".proto") + "_pb2"
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            stale.append(module_name)
            continue
        committed = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        if committed != file:
            stale.append(module_name)
    return stale


def _all_messages(messages):  # type: ignore[no-untyped-def]
    for message in messages:
        yield message
        yield from _all_messages(message.nested_type)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if raftkv/pb is stale")
    options = parser.parse_args()
    if not options.check:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        generate(OUT_DIR)
        return 0
    stale = stale_modules()
    if stale:
        print(f"raftkv/pb is stale ({', '.join(sorted(stale))}): run python proto/generate.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
