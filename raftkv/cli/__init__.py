"""Command-line entry points: ``raftkv`` (server side) and ``raftkv-cli`` (client side)."""
