# raftkv node image: `raftkv serve`, configured through RAFTKV_* environment variables.
#
#   docker build -t raftkv .
#   docker run --rm -e RAFTKV_ID=1 -e RAFTKV_CLUSTER=1=127.0.0.1:7001 -p 127.0.0.1:7001:7001 raftkv
#
# docker-compose.yml runs three of these; deploy/k8s/ runs them as a StatefulSet. Every `raftkv
# serve` flag has an environment variable: --id is RAFTKV_ID, --cluster RAFTKV_CLUSTER, and so on.
# Plain Dockerfile syntax (no BuildKit-only features), so the classic builder builds it too.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: raftkv and its dependencies, installed into a self-contained venv -------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY raftkv ./raftkv
# The base image's pip installs into a venv without pip of its own (pip >= 22.3: --python), so the
# runtime stage copies one directory and carries no build tools.
RUN python -m venv --without-pip /opt/raftkv \
 && python -m pip --python /opt/raftkv/bin/python install . \
 && /opt/raftkv/bin/raftkv --help >/dev/null \
 && /opt/raftkv/bin/raftkv-cli --help >/dev/null

# --- runtime --------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="raftkv" \
      org.opencontainers.image.description="A replicated key-value store: Raft over gRPC, LevelDB" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed non-root uid/gid, so volume ownership is the same on every host and in Kubernetes
# (securityContext.fsGroup 10001).
RUN groupadd --system --gid 10001 raftkv \
 && useradd --system --uid 10001 --gid raftkv --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin raftkv \
 && mkdir -p /data \
 && chown raftkv:raftkv /data

COPY --from=builder /opt/raftkv /opt/raftkv

ENV PATH=/opt/raftkv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RAFTKV_LISTEN=0.0.0.0:7001 \
    RAFTKV_METRICS_LISTEN=0.0.0.0:9101 \
    RAFTKV_DATA_DIR=/data

USER raftkv
WORKDIR /data
VOLUME ["/data"]
# gRPC (Raft peers, KV and Cluster clients, health, reflection) and Prometheus metrics.
EXPOSE 7001 9101

# `raftkv health` asks the node's own grpc.health.v1 service (port from RAFTKV_LISTEN); SERVING
# means the node knows a leader and has applied up to its commit index.
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
    CMD ["raftkv", "health", "--quiet"]

# The server handles SIGTERM (hand leadership over, close LevelDB, exit 0). Compose adds an init
# process (init: true) as well, so signals reach it even as PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["raftkv", "serve"]
