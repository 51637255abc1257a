"""``raftkv-cli``: talk to a raftkv cluster."""

from __future__ import annotations

import click

from raftkv import __version__


@click.group()
@click.version_option(__version__, prog_name="raftkv-cli")
def main() -> None:
    """Talk to a raftkv cluster."""
