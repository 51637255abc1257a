#!/usr/bin/env bash
# Everything tests/deploy needs on a fresh Debian bookworm machine with no image registry, as root:
# Debian's docker.io (engine), mmdebstrap (base-image stand-ins) and prometheus (the host Prometheus
# of tests/deploy/test_dashboard.py), then the engine, Compose v2 and the base images
# (deploy/ci/docker-env.sh). Idempotent; .ci/run calls it before pytest:
#
#   bash deploy/ci/setup.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v prometheus >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: apt-get install ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's prometheus package may start a system service; tests run their own instance.
if command -v service >/dev/null; then service prometheus stop >/dev/null 2>&1 || true; fi

exec "$HERE/docker-env.sh" all
