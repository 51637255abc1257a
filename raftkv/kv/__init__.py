"""raftkv.kv (see ../shared/DESIGN.md)."""
