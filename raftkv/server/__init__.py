"""raftkv.server (see ../shared/DESIGN.md)."""
