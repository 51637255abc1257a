"""raftkv.transport (see ../shared/DESIGN.md)."""
