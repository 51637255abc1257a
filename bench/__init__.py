"""raftkv's benchmark suite (not tests): cluster load side by side with etcd, failover, memory.

Run everything with ``python -m bench.run`` (``--quick`` for a short smoke); see bench/README.md.
"""
