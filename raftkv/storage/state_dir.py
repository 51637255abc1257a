"""Atomic replacement of the state directory (``DATA_DIR/state``) by a freshly written one.

Protocol, for a target directory ``state``:

1. write the new database into ``state.new`` (any old ``state.new`` is removed first);
2. seal it: close, fsync every file and directory, then create ``state.new/SEALED`` and fsync;
3. rename ``state`` -> ``state.old``; 4. rename ``state.new`` -> ``state``; fsync the parent;
5. remove ``state.old``.

Recovery (:func:`recover_state_dir`, run before the state DB is opened) makes every crash point
land on the old state or the new one, never a mix: if ``state`` is missing, the crash fell between
steps 3 and 4 and ``state.new`` is sealed, so it is rolled forward; then every leftover
``state.new`` (unsealed, or sealed but never swapped in) and ``state.old`` is deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from raftkv.storage.errors import DataDirError
from raftkv.storage.fsutil import fsync_dir, fsync_file, fsync_tree
from raftkv.storage.leveldb import LevelDB

log = logging.getLogger(__name__)

SEALED_MARKER = "SEALED"

Fault = Callable[[str], None]
"""Called with a step name at each crash point; tests raise from it to simulate a crash there."""


def _no_fault(step: str) -> None:
    pass


def new_path(target: Path) -> Path:
    return target.with_name(target.name + ".new")


def old_path(target: Path) -> Path:
    return target.with_name(target.name + ".old")


def recover_state_dir(target: Path) -> None:
    """Finish or discard an interrupted swap of ``target`` (see the module docstring)."""
    new, old = new_path(target), old_path(target)
    if not target.exists():
        if (new / SEALED_MARKER).exists():
            log.warning("rolling forward an interrupted install: %s -> %s", new, target)
            os.rename(new, target)
            fsync_dir(target.parent)
        elif old.exists():
            # Not produced by swap_in (it seals before renaming), but never lose a state dir.
            log.warning("restoring %s from %s", target, old)
            os.rename(old, target)
            fsync_dir(target.parent)
    removed = False
    for leftover in (new, old):
        if leftover.exists():
            log.warning("removing leftover directory %s from an interrupted install", leftover)
            shutil.rmtree(leftover)
            removed = True
    if removed:
        fsync_dir(target.parent)


def create_fresh(target: Path) -> LevelDB:
    """An empty database in ``target``'s ``.new`` directory, for an install to fill."""
    new = new_path(target)
    if new.exists():
        shutil.rmtree(new)
    return LevelDB.open(new, create=True)


def seal(db: LevelDB, fault: Fault = _no_fault) -> None:
    """Close the fresh database and make it, and the fact that it is complete, durable."""
    path = db.path
    db.close()
    fault("closed")
    fsync_tree(path)
    fault("synced")
    marker = path / SEALED_MARKER
    with open(marker, "wb") as f:
        os.fsync(f.fileno())
    fsync_file(marker)
    fsync_dir(path)
    fsync_dir(path.parent)
    fault("sealed")


def swap_in(target: Path, fault: Fault = _no_fault) -> None:
    """Replace ``target`` by its sealed ``.new`` directory. ``target`` must not be open."""
    new, old = new_path(target), old_path(target)
    if not (new / SEALED_MARKER).exists():
        raise DataDirError(f"{new} is not a sealed state directory")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.rename(target, old)
        fault("moved-old")
    os.rename(new, target)
    fsync_dir(target.parent)
    fault("moved-new")
    (target / SEALED_MARKER).unlink()
    if old.exists():
        shutil.rmtree(old)
    fsync_dir(target.parent)
    fault("removed-old")
