"""The user story of docker-compose.yml, run for real on a Docker engine with no image registry.

1. build the image from the real Dockerfile (deploy/ci/compose.ci.yml adds build network only);
2. bring up raftkv1..3 and prometheus from the real docker-compose.yml, wait until healthy;
3. from the host, `raftkv-cli put/get` through the published ports with the default endpoints;
4. `docker kill` the leader's container: the cluster keeps serving; `docker start`: it rejoins;
5. disconnect a node from the network: the majority keeps taking writes, the isolated node
   refuses a linearizable read with a clear one-line error; reconnect: it converges;
6. the compose Prometheus has scraped all three nodes (`up` is 1 for each);
7. `docker compose down -v`, then remove the images, volumes and network the test made and the
   build cache (`docker builder prune -af`) (done last, after step 8);
8. the README's "scaling to five nodes": a new cluster from deploy/compose.5-nodes.yml serves
   and is scraped.

Grafana is NOT started: no registry this project reaches (Debian, PyPI, npm) has its image, so
`docker compose up` here names the other services explicitly. Its dashboard is proven against a
real Prometheus by tests/deploy/test_dashboard.py.

The engine, Compose v2 and the base-image stand-ins come from deploy/ci/docker-env.sh (cheap when
already there; deploy/ci/setup.sh installs its Debian packages). If the engine cannot start, this
test FAILS with the reason: it never skips.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from raftkv.client import Client
from tests.deploy.harness import (
    ROOT,
    PrometheusAPI,
    Result,
    port_in_use,
    raftkv_cli,
    run,
    wait_for,
)

PROJECT = "raftkv-deploytest"
IMAGE = f"{PROJECT}:local"  # docker-compose.yml tags the node image ${RAFTKV_IMAGE:-raftkv:local}
NETWORK = f"{PROJECT}_raftkv"
NODES = {1: "raftkv1", 2: "raftkv2", 3: "raftkv3"}
PORTS = {1: 7001, 2: 7002, 3: 7003}
HOST_PORTS = [7001, 7002, 7003, 9101, 9102, 9103, 9090]
DEFAULT_ENDPOINTS = [f"127.0.0.1:{p}" for p in PORTS.values()]

timings: dict[str, float] = {}


def compose_env() -> dict[str, str]:
    env = dict(os.environ)
    env["COMPOSE_BAKE"] = "false"
    env["RAFTKV_IMAGE"] = IMAGE  # never touch a raftkv:local the user built
    env.pop("RAFTKV_ENDPOINTS", None)  # the host CLI must work with its default endpoints
    return env


FIVE_NODES = ROOT / "deploy/compose.5-nodes.yml"


def compose(*args: str, timeout_s: float, check: bool = True, five: bool = False) -> Result:
    files = [ROOT / "docker-compose.yml", *([FIVE_NODES] if five else [])]
    files.append(ROOT / "deploy/ci/compose.ci.yml")
    return run(
        [
            "docker", "compose", "-p", PROJECT,
            *(arg for f in files for arg in ("-f", str(f))),
            *args,
        ],
        timeout_s=timeout_s, check=check, env=compose_env(),
    )  # fmt: skip


def docker(*args: str, timeout_s: float = 60, check: bool = True) -> Result:
    return run(["docker", *args], timeout_s=timeout_s, check=check, env=compose_env())


def cli(*args: str, timeout_s: float = 30) -> Result:
    return run([*raftkv_cli(), *args], timeout_s=timeout_s, check=False, env=compose_env())


def container(service: str) -> str:
    out = docker(
        "ps", "-a", "-q",
        "--filter", f"label=com.docker.compose.project={PROJECT}",
        "--filter", f"label=com.docker.compose.service={service}",
    ).stdout.split()  # fmt: skip
    assert len(out) == 1, f"expected one container for {service}, found {out}"
    return out[0]


def health(service: str) -> str:
    """The container's health while it runs (healthy, starting, unhealthy), else its state."""
    state = json.loads(docker("inspect", "--format", "{{json .State}}", container(service)).stdout)
    if state.get("Status") != "running":
        return str(state.get("Status"))  # exited, paused, ...: its last health is stale
    return str(state.get("Health", {}).get("Status", "running"))


def in_container(service: str, *args: str, timeout_s: float = 30) -> Result:
    return docker("exec", container(service), *args, timeout_s=timeout_s, check=False)


def leader_id() -> int:
    with Client(DEFAULT_ENDPOINTS, timeout=3) as client:
        statuses = [s for s in client.status_all(timeout=2) if s.up]
    leaders = [s.id for s in statuses if s.role == "leader"]
    return leaders[0] if len(leaders) == 1 else 0


def node_caught_up(node_id: int) -> bool:
    with Client(DEFAULT_ENDPOINTS, timeout=3) as client:
        statuses = {s.id: s for s in client.status_all(timeout=2) if s.up}
    leader = next((s for s in statuses.values() if s.role == "leader"), None)
    node = statuses.get(node_id)
    return bool(
        leader
        and node
        and node.leader_id == leader.id
        and (node.applied_index >= leader.commit_index)
    )


def put_from_host(key: str, value: str, within_s: float) -> None:
    def attempt() -> bool:
        result = cli("put", key, value)
        if result.code != 0:
            raise AssertionError(result.describe())
        return True

    wait_for(attempt, within_s, f"raftkv-cli put {key} from the host", interval_s=0.5)


def get_from_host(key: str) -> str:
    result = cli("get", key)
    assert result.code == 0, result.describe()
    return result.stdout


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    started = time.monotonic()
    result = run(["bash", str(ROOT / "deploy/ci/docker-env.sh"), "all"], timeout_s=900, check=False)
    if result.code != 0:
        pytest.fail(
            "no usable Docker engine / Compose / base images (run deploy/ci/setup.sh as root):\n"
            + result.describe(),
            pytrace=False,
        )
    timings["engine, compose and base images ready"] = time.monotonic() - started
    busy = [p for p in HOST_PORTS if port_in_use(p)]
    if busy:
        pytest.fail(
            f"127.0.0.1 ports {busy} are in use: docker-compose.yml publishes them; stop what "
            "listens there (a `raftkv up`?) and run again",
            pytrace=False,
        )
    yield


@pytest.mark.timeout(720)
def test_compose_cluster_end_to_end(engine: None) -> None:
    test_started = time.monotonic()
    dangling_before = set(docker("images", "-qf", "dangling=true").stdout.split())
    # Leftovers of an interrupted earlier run would be reused by `up`: start clean.
    compose("down", "-v", "--remove-orphans", "-t", "5", timeout_s=120, five=True)
    try:
        # 1. Build from the real Dockerfile.
        started = time.monotonic()
        compose("build", timeout_s=300)
        timings["image build"] = time.monotonic() - started
        probe = docker("run", "--rm", "--entrypoint", "raftkv", IMAGE, "health", "--help")
        assert "SERVING" in probe.stdout, "the image's HEALTHCHECK needs `raftkv health`"

        # 2. Up and healthy (Grafana left out: see the module docstring).
        started = time.monotonic()
        compose(
            "up", "-d", "--wait", "--wait-timeout", "150", *NODES.values(), "prometheus",
            timeout_s=200,
        )  # fmt: skip
        timings["compose up --wait"] = time.monotonic() - started
        for service in [*NODES.values(), "prometheus"]:
            assert health(service) == "healthy", f"{service} is {health(service)}"

        # 3. The host CLI with its default endpoints.
        put_from_host("a", "1", within_s=20)
        assert get_from_host("a") == "1"

        # 4. Kill the leader's container; the others keep serving; start it; it rejoins.
        started = time.monotonic()
        leader = wait_for(leader_id, 20, "one leader")
        docker("kill", container(NODES[leader]))
        put_from_host("after-kill", "2", within_s=30)
        # `docker kill` counts as a manual stop: restart: unless-stopped leaves it down.
        assert health(NODES[leader]) == "exited"
        assert get_from_host("after-kill") == "2"
        assert get_from_host("a") == "1"
        new_leader = wait_for(leader_id, 20, "a leader among the survivors")
        assert new_leader != leader
        docker("start", container(NODES[leader]))
        wait_for(lambda: health(NODES[leader]) == "healthy", 90, f"{NODES[leader]} healthy again")
        wait_for(lambda: node_caught_up(leader), 30, f"node {leader} caught up")
        timings["leader kill, serve, restart, rejoin"] = time.monotonic() - started

        # 5. Isolate one node (a follower): the majority serves writes; the isolated node refuses
        # a linearizable read with one clear line; reconnect: it converges.
        started = time.monotonic()
        leader = wait_for(leader_id, 20, "one leader")
        isolated = next(n for n in NODES if n != leader)
        name = NODES[isolated]
        docker("network", "disconnect", NETWORK, container(name))
        put_from_host("during-partition", "3", within_s=30)
        assert get_from_host("during-partition") == "3"
        endpoint = f"127.0.0.1:{PORTS[isolated]}"
        refused = in_container(
            name, "raftkv-cli", "--endpoints", endpoint, "--timeout", "3", "get", "during-partition"
        )
        assert refused.code in (3, 4), f"expected unavailable/timeout:\n{refused.describe()}"
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.describe()
        docker("network", "connect", "--alias", name, NETWORK, container(name))

        def converged() -> bool:
            stale = in_container(
                name, "raftkv-cli", "--endpoints", endpoint, "get", "--stale", "during-partition"
            )
            return stale.code == 0 and stale.stdout == "3"

        wait_for(converged, 60, f"{name} converging after reconnect", interval_s=1)
        linear = in_container(name, "raftkv-cli", "--endpoints", endpoint, "get", "a")
        assert linear.code == 0 and linear.stdout == "1", linear.describe()
        timings["partition, serve, heal, converge"] = time.monotonic() - started

        # 6. The compose Prometheus scraped every node.
        prometheus = PrometheusAPI("http://127.0.0.1:9090")

        def all_up() -> bool:
            answer = prometheus.query('up{job="raftkv"}')
            values = {r["metric"]["instance"]: r["value"][1] for r in answer["data"]["result"]}
            expected = {f"{NODES[n]}:{9100 + n}" for n in NODES}
            return set(values) == expected and all(v == "1" for v in values.values())

        wait_for(all_up, 60, "Prometheus: up == 1 for raftkv1..3", interval_s=1)

        # 8. The README's "scaling to five": a new cluster from the five-node override.
        started = time.monotonic()
        compose("down", "-v", "-t", "10", timeout_s=120)
        five = [f"raftkv{n}" for n in range(1, 6)]
        compose(
            "up", "-d", "--wait", "--wait-timeout", "150", *five, "prometheus",
            timeout_s=200, five=True,
        )  # fmt: skip
        endpoints = ",".join(f"127.0.0.1:{7000 + n}" for n in range(1, 6))
        put = cli("--endpoints", endpoints, "put", "five", "5")
        assert put.code == 0, put.describe()
        for n in range(1, 6):
            got = cli("--endpoints", f"127.0.0.1:{7000 + n}", "get", "five")
            assert got.code == 0 and got.stdout == "5", got.describe()
        with Client(endpoints.split(","), timeout=3) as client:
            status = client.status()
        assert sorted(m.id for m in status.members if not m.learner) == [1, 2, 3, 4, 5]

        def five_up() -> bool:
            answer = prometheus.query('up{job="raftkv"} == 1')
            return len(answer["data"]["result"]) == 5

        wait_for(five_up, 60, "Prometheus: up == 1 for raftkv1..5", interval_s=1)
        timings["five-node cluster up and serving"] = time.monotonic() - started
    except BaseException:
        logs = compose("logs", "--no-color", "--tail", "40", timeout_s=60, check=False, five=True)
        print(logs.stdout[-20000:])
        raise
    finally:
        # 7. Down and clean: containers, volumes, network, the built images, the build cache.
        started = time.monotonic()
        compose("down", "-v", "--remove-orphans", "-t", "10", timeout_s=120, five=True)
        docker("image", "rm", "-f", IMAGE, timeout_s=60, check=False)
        # Untagged leftovers of this build only (never other dangling images on the machine).
        dangling = set(docker("images", "-qf", "dangling=true").stdout.split()) - dangling_before
        if dangling:
            docker("image", "rm", "-f", *sorted(dangling), timeout_s=60, check=False)
        docker("builder", "prune", "-af", timeout_s=120)
        timings["down -v and clean up"] = time.monotonic() - started
        timings["whole test"] = time.monotonic() - test_started
        print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    label = f"label=com.docker.compose.project={PROJECT}"
    assert not docker("ps", "-aq", "--filter", label).stdout.split(), "containers left behind"
    assert not docker("volume", "ls", "-q", "--filter", label).stdout.split(), "volumes left"
    assert not docker("network", "ls", "-q", "--filter", label).stdout.split(), "network left"
    images = docker("images", "-q", IMAGE).stdout.split()
    assert not images, f"image {IMAGE} left behind"
