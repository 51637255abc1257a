"""raftkv.client (see ../shared/DESIGN.md)."""
