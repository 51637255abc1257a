"""raftkv: a replicated, linearizable key-value store (Raft over gRPC, persisted in LevelDB)."""

__version__ = "0.1.0"
