"""raftkv.node (see ../shared/DESIGN.md)."""
