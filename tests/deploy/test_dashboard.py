"""The Grafana dashboard, proven against a real Prometheus scraping a real three-node cluster.

Grafana itself is not started: no registry this project reaches has it (not Debian, PyPI or npm).
What Grafana would do with deploy/grafana/dashboards/raftkv.json is done here instead:
- structure: unique panel ids; every panel (rows aside) has a title and a unit and names the
  datasource uid that deploy/grafana/provisioning/datasources/prometheus.yml provisions; the
  `instance` template variable lists the three nodes;
- queries: Grafana's macros and variables are expanded as Grafana would ($__rate_interval,
  $instance = All), then EVERY expression goes to Prometheus's HTTP API (Debian's `prometheus`):
  it must parse, name only metrics the nodes export (or `up`, which Prometheus makes), and return
  data over the scenario: three `raftkv serve` processes with a low snapshot threshold; load
  (writes, reads, forwarded writes, a bad request, a peer message from another cluster); the
  leader killed (a leader change); writes while it is down (compaction); its restart (it catches
  up through InstallSnapshot).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from raftkv.client import Client
from raftkv.pb import kv_pb2, kv_pb2_grpc, raft_pb2, raft_pb2_grpc
from tests.deploy.harness import (
    ROOT,
    LocalCluster,
    PrometheusAPI,
    host_prometheus,
    wait_for,
)

DASHBOARD = ROOT / "deploy/grafana/dashboards/raftkv.json"
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
DASHBOARD_PROVIDERS = ROOT / "deploy/grafana/provisioning/dashboards/raftkv.yml"
COMPOSE = ROOT / "docker-compose.yml"

SCRAPE_INTERVAL_S = 1
SNAPSHOT_THRESHOLD = 100  # low, so the scenario compacts and installs a snapshot
# What Grafana substitutes: $__rate_interval is max(4 x scrape interval, $__interval + scrape).
MACROS = {
    "__rate_interval": f"{4 * SCRAPE_INTERVAL_S + 6}s",
    "__interval": "2s",
    "__range": "5m",
    "instance": ".*",  # the variable's allValue: "All" selected
}

# Panels that may legitimately show nothing in this scenario, and why.
MAY_BE_EMPTY = {
    "Peer outbox drops": "a peer's bounded outbox only overflows under sustained overload",
}

# Series Prometheus itself makes for every target (not exported by the nodes).
SYNTHETIC_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan",
}  # fmt: skip


# ------------------------------------------------------------------------------- the dashboard
def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # panels inside a collapsed row
    return out


def visual_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard) if p["type"] != "row"]


def expand(expr: str) -> str:
    """Grafana's macro and variable substitution for the forms $x, ${x} and [[x]]."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in MACROS:
            raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")
        return MACROS[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a small lexer; enough for our dashboard)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery windows
    # Label lists after grouping modifiers.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        following = text[match.end() :].lstrip()[:1]
        if following == "(" or name.lower() in PROMQL_WORDS:
            continue  # a function or aggregation, or a keyword
        names.add(name)
    return names


def test_metric_name_lexer() -> None:
    assert metric_names(
        'max by (peer) (raftkv_follower_lag_entries{instance=~".*"} and on (instance) '
        "(raftkv_is_leader == 1))"
    ) == {"raftkv_follower_lag_entries", "raftkv_is_leader"}
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="b{c}"}[5m])))') == {
        "x_bucket"
    }


def test_dashboard_structure() -> None:
    dashboard = load_dashboard()
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert len(provisioned) == 1, "one provisioned datasource is expected"
    uid = provisioned[0]["uid"]
    assert provisioned[0]["type"] == "prometheus"
    assert provisioned[0]["url"] == "http://prometheus:9090", "the compose service name"

    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"

    problems = []
    for panel in visual_panels(dashboard):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if not panel.get("title"):
            problems.append(f"{where}: no title")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"{where}: no unit")
        if panel.get("datasource", {}).get("uid") != uid:
            problems.append(f"{where}: datasource is not uid {uid!r}")
        if not panel.get("targets"):
            problems.append(f"{where}: no queries")
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("uid") != uid:
                problems.append(f"{where} target {target.get('refId')}: datasource not {uid!r}")
            if not target.get("expr"):
                problems.append(f"{where} target {target.get('refId')}: empty expression")
    # Grafana's 24-column grid: every panel inside it, none on top of another.
    taken: dict[tuple[int, int], str] = {}
    for panel in all_panels(dashboard):
        g = panel["gridPos"]
        if g["x"] + g["w"] > 24:
            problems.append(f"panel {panel['id']} {panel['title']!r}: wider than the grid")
        for cell in (
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        ):
            if cell in taken:
                problems.append(f"panel {panel['id']} {panel['title']!r} overlaps {taken[cell]!r}")
                break
            taken[cell] = panel["title"]
    assert not problems, "\n".join(problems)

    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"instance"}
    assert variables["instance"]["datasource"]["uid"] == uid
    assert variables["instance"]["includeAll"] and variables["instance"]["allValue"] == ".*"

    # The provider loads the folder compose mounts, and compose makes raftkv.json the home page.
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    compose = yaml.safe_load(COMPOSE.read_text())
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    dashboards_dir = mounts["./deploy/grafana/dashboards"]
    assert providers[0]["options"]["path"] == dashboards_dir
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


# ------------------------------------------------------------------------------- the scenario
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def exported_metric_names(cluster: LocalCluster) -> set[str]:
    """Every series name the nodes declare, including families that have no samples yet."""
    import urllib.request

    names: set[str] = set()
    for node in cluster.nodes:
        with urllib.request.urlopen(f"http://{node.metrics_address}/metrics", timeout=5) as r:
            text = r.read().decode()
        for family in text_string_to_metric_families(text):
            names.update(sample.name for sample in family.samples)
            names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


def leader_of(client: Client) -> int:
    statuses = client.status_all(timeout=2)
    leaders = {s.leader_id for s in statuses if s.up and s.leader_id}
    if len(leaders) == 1 and all(s.up for s in statuses):
        (leader,) = leaders
        return leader
    return 0


def wait_scraped(prom: PrometheusAPI, after: float) -> None:
    """Until Prometheus has scraped every node (up or down) at least once after ``after``."""

    def scraped() -> bool:
        answer = prom.query('min(timestamp(up{job="raftkv"})) and count(up{job="raftkv"}) == 3')
        result = answer.get("data", {}).get("result", [])
        return bool(result) and float(result[0]["value"][1]) > after

    wait_for(scraped, 30, "Prometheus scraping every node", interval_s=SCRAPE_INTERVAL_S / 4)


def steady_load(client: Client, prefix: str, value: str, seconds: float, at_least: int = 0) -> int:
    """Writes and reads for ``seconds`` (several scrapes, so rates see them) and at least
    ``at_least`` writes; bounded: 5,000 writes or 60 s."""
    started = time.monotonic()
    n = 0
    while n < 5000 and time.monotonic() - started < 60:
        if n >= at_least and time.monotonic() - started >= seconds:
            break
        client.put(f"{prefix}{n:05d}", value)
        if n % 3 == 0:
            assert client.get(f"{prefix}{n:05d}") == value.encode()
        n += 1
    return n


def drive_scenario(cluster: LocalCluster, prom: PrometheusAPI) -> None:
    """Load, a refused peer message, a leader change, compaction and a snapshot install.

    Each phase lasts several scrape intervals and is scraped before the next one starts, so a
    node killed right after a burst has still been seen doing it.
    """
    load_s = 4 * SCRAPE_INTERVAL_S
    with Client(cluster.endpoints, timeout=10) as client:
        leader = wait_for(lambda: leader_of(client), 30, "a leader every node knows")
        written = steady_load(client, "k", "v", load_s)
        assert written > 0
        assert client.get("missing") is None
        assert list(client.scan("k0000"))
        assert client.cas("k00000", "v", "w")
        assert client.delete("k00001")

        # Straight to a follower over raw gRPC: forwarded to the leader, counted as forwarded.
        follower = next(n for n in cluster.nodes if n.id != leader)
        with grpc.insecure_channel(follower.address) as channel:
            kv = kv_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + load_s
            for i in range(2000):
                if time.monotonic() > deadline:
                    break
                kv.Put(kv_pb2.PutRequest(key=f"f{i}".encode(), value=b"x"), timeout=5)
                kv.Get(kv_pb2.GetRequest(key=f"f{i}".encode()), timeout=5)
            # A bad request: an error code for the "gRPC errors by code" panel.
            with pytest.raises(grpc.RpcError) as bad:
                kv.Put(kv_pb2.PutRequest(key=b"", value=b"x"), timeout=5)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            # A node of another cluster knocks: refused and counted.
            raft = raft_pb2_grpc.RaftStub(channel)  # type: ignore[no-untyped-call]
            header = raft_pb2.PeerHeader(cluster_id="another-cluster", from_id=9, to_id=follower.id)
            with pytest.raises(grpc.RpcError):
                raft.RequestVote(raft_pb2.VoteRequest(header=header, last_log_index=1), timeout=5)
        wait_scraped(prom, time.time())

        # A leader change: kill the leader; the others elect a new one.
        old = cluster.node(leader)
        cluster.kill(old)
        survivors = Client([n.address for n in cluster.nodes if n is not old], timeout=10)
        with survivors:

            def new_leader() -> int:
                statuses = survivors.status_all(timeout=2)
                ids = {s.leader_id for s in statuses if s.up and s.role == "leader"}
                return next(iter(ids), 0) if ids and leader not in ids else 0

            wait_for(new_leader, 30, "a new leader after killing the old one")
            # Writes while it is down: past the snapshot threshold, so the log is compacted and
            # the old leader can only catch up through InstallSnapshot.
            written = steady_load(
                survivors, "d", "x" * 100, load_s, at_least=3 * SNAPSHOT_THRESHOLD
            )
            assert written >= 3 * SNAPSHOT_THRESHOLD, f"only {written} writes: too few to compact"
        wait_scraped(prom, time.time())

        cluster.start(old)

        def caught_up() -> bool:
            statuses = {s.id: s for s in client.status_all(timeout=2) if s.up}
            if len(statuses) != 3:
                return False
            lead = next((s for s in statuses.values() if s.role == "leader"), None)
            return lead is not None and statuses[old.id].applied_index >= lead.commit_index

        wait_for(caught_up, 60, f"node {old.id} catching up after its restart")
        assert client.get("d00000") == b"x" * 100
        steady_load(client, "e", "y", load_s)

    # Every node scraped twice after the last event, so rates over the end have two samples.
    wait_scraped(prom, time.time() + SCRAPE_INTERVAL_S)


def has_data(answer: dict[str, Any]) -> bool:
    for series in answer["data"]["result"]:
        for _, value in series.get("values", []):
            if value not in ("NaN", "+Inf", "-Inf"):
                return True
    return False


def test_every_dashboard_query_returns_data(tmp_path: Path) -> None:
    dashboard = load_dashboard()
    cluster = LocalCluster(
        tmp_path / "cluster", extra_args=("--snapshot-threshold", str(SNAPSHOT_THRESHOLD))
    )
    cluster.start()
    try:
        targets = [n.metrics_address for n in cluster.nodes]
        with host_prometheus(tmp_path / "prometheus", targets, SCRAPE_INTERVAL_S) as prom:
            started = time.time()
            try:
                drive_scenario(cluster, prom)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{cluster.logs()}") from None
            exported = exported_metric_names(cluster) | SYNTHETIC_METRICS
            end = time.time()

            # The instance variable: Grafana's label_values(raftkv_term{job="raftkv"}, instance).
            answer = prom.query('count by (instance) (raftkv_term{job="raftkv"})')
            instances = {s["metric"]["instance"] for s in answer["data"]["result"]}
            assert instances == set(targets)

            failures = []
            evaluated = 0
            for panel in visual_panels(dashboard):
                title = panel["title"]
                empty_panel = True
                for target in panel["targets"]:
                    expr = expand(target["expr"])
                    where = f"panel {panel['id']} {title!r} {target['refId']}: {expr}"
                    unknown = metric_names(expr) - exported
                    if unknown:
                        failures.append(f"{where}\n    names metrics no node exports: {unknown}")
                    answer = prom.query_range(expr, started, end, step_s=SCRAPE_INTERVAL_S)
                    evaluated += 1
                    if answer.get("status") != "success":
                        failures.append(f"{where}\n    Prometheus: {answer.get('error')}")
                        continue
                    if has_data(answer):
                        empty_panel = False
                if empty_panel and title not in MAY_BE_EMPTY:
                    failures.append(f"panel {panel['id']} {title!r}: no data in the scenario")
            assert not failures, f"{len(failures)} of {evaluated} queries failed:\n" + "\n".join(
                failures
            )
            assert evaluated >= 40
    finally:
        cluster.stop()
