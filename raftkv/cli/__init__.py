"""Command-line entry points: ``raftkv`` (server side) and ``raftkv-cli`` (client side)."""

from raftkv.cli.grpc_transport import prefer_iomgr

# Before any command module imports grpc: grpc core reads this choice once, at import.
prefer_iomgr()
