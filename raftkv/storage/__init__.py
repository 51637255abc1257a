"""raftkv.storage (see ../shared/DESIGN.md)."""
