"""raftkv.transport: Raft messages between nodes.

- :mod:`~raftkv.transport.codec`: core messages <-> protobuf; the gateway that validates peer input
- :mod:`~raftkv.transport.peer_client`: :class:`GrpcTransport`, one ordered, batched stream per peer
- :mod:`~raftkv.transport.servicer`: the Raft gRPC service (stream, unary methods, InstallSnapshot)
- :mod:`~raftkv.transport.memory`: an in-memory network for whole-cluster tests
- :mod:`~raftkv.transport.config`: every bound and timeout, validated
"""
