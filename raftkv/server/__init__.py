"""raftkv.server: the node process (see DESIGN.md, "Layers").

- :mod:`~raftkv.server.app`: :class:`NodeServer`, wiring and graceful shutdown
- :mod:`~raftkv.server.kv_service`, :mod:`~raftkv.server.cluster_service`: the client services
- :mod:`~raftkv.server.forward`: follower -> leader forwarding, coalesced into KV.Batch calls
- :mod:`~raftkv.server.reads`: batched local reads off the event loop
- :mod:`~raftkv.server.errors`: every client-visible error and its gRPC status, in one place
- :mod:`~raftkv.server.settings`: ``raftkv serve`` settings and limits, validated
- :mod:`~raftkv.server.local_cluster`: ``raftkv up``
"""
