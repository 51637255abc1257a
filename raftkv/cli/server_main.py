"""``raftkv``: run and manage nodes (serve, up, restore)."""

from __future__ import annotations

import click

from raftkv import __version__


@click.group()
@click.version_option(__version__, prog_name="raftkv")
def main() -> None:
    """raftkv: a replicated, linearizable key-value store."""
