"""Static checks of the deployment files: Kubernetes manifests against the Kubernetes JSON schemas
(kubernetes-validate, which ships them: no network), the pod-ordinal entrypoint run for real,
docker-compose.yml's promises, and the Prometheus configuration through `promtool`.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.harness import ROOT, run

K8S = ROOT / "deploy/k8s"
# The oldest version we promise (native gRPC probes are GA since 1.27) and the newest shipped.
K8S_VERSIONS = ["1.27.0", kubernetes_validate.utils.latest_version()]


def k8s_resources() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path, doc))
    return out


def by_kind() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for _, doc in k8s_resources():
        found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_match_the_kubernetes_schemas(version: str) -> None:
    resources = k8s_resources()
    assert {d["kind"] for _, d in resources} == {"StatefulSet", "Service", "PodDisruptionBudget"}
    for path, doc in resources:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} {doc['kind']}/{doc['metadata']['name']} ({version}): {exc}")


def test_the_validator_rejects_what_kubernetes_would() -> None:
    """A control: the same validator, fed small mistakes, must refuse each one."""
    sts = by_kind()["StatefulSet/raftkv"]
    version = K8S_VERSIONS[-1]
    mistakes = []
    unknown_field = copy.deepcopy(sts)
    unknown_field["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grcp"] = {}
    mistakes.append(unknown_field)
    wrong_type = copy.deepcopy(sts)
    wrong_type["spec"]["replicas"] = "three"
    mistakes.append(wrong_type)
    missing = copy.deepcopy(sts)
    del missing["spec"]["selector"]
    mistakes.append(missing)
    for doc in mistakes:
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(doc, version, strict=True)


def test_k8s_statefulset_wiring() -> None:
    kinds = by_kind()
    sts = kinds["StatefulSet/raftkv"]
    peer = kinds["Service/raftkv-peer"]
    client = kinds["Service/raftkv"]
    pdb = kinds["PodDisruptionBudget/raftkv"]
    spec = sts["spec"]
    pod = spec["template"]
    labels = pod["metadata"]["labels"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel", "a lone first pod never becomes ready"
    assert spec["serviceName"] == peer["metadata"]["name"]
    assert peer["spec"]["clusterIP"] == "None" and peer["spec"]["publishNotReadyAddresses"]
    for service in (peer, client, pdb):
        selector = service["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), f"{service['metadata']['name']} selects no pod"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert env["RAFTKV_DATA_DIR"] == "/data"

    # Every member's address is the stable DNS name of one pod, on the gRPC port.
    name, service = sts["metadata"]["name"], peer["metadata"]["name"]
    expected = ",".join(
        f"{i + 1}={name}-{i}.{service}:{ports['grpc']}" for i in range(spec["replicas"])
    )
    assert env["RAFTKV_CLUSTER"] == expected
    assert env["RAFTKV_LISTEN"].endswith(f":{ports['grpc']}")
    assert env["RAFTKV_METRICS_LISTEN"].endswith(f":{ports['metrics']}")

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc"], probe
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user


def test_k8s_node_id_comes_from_the_pod_ordinal(tmp_path: Path) -> None:
    """Run the container's shell snippet with a stand-in `raftkv` that prints what it got."""
    sts = by_kind()["StatefulSet/raftkv"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "-c"]
    script = container["args"][0]
    fake = tmp_path / "raftkv"
    fake.write_text('#!/bin/sh\necho "$@|$RAFTKV_ID|$RAFTKV_ADVERTISE"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    for ordinal in range(3):
        result = subprocess.run(
            ["/bin/sh", "-c", script],
            env={**env, "HOSTNAME": f"raftkv-{ordinal}"},
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        assert result.stdout.strip() == (
            f"serve|{ordinal + 1}|raftkv-{ordinal}.raftkv-peer:7001"
        ), result
    bad = subprocess.run(
        ["/bin/sh", "-c", script],
        env={**env, "HOSTNAME": "raftkv"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert bad.returncode != 0 and "ordinal" in bad.stderr


# ------------------------------------------------------------------------------- compose
def compose_file() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def test_compose_file_keeps_its_promises() -> None:
    doc = compose_file()
    services = doc["services"]
    assert set(services) == {"raftkv1", "raftkv2", "raftkv3", "prometheus", "grafana"}
    members = {}
    for n in (1, 2, 3):
        svc = services[f"raftkv{n}"]
        env = svc["environment"]
        assert env["RAFTKV_ID"] == str(n)
        port = 7000 + n
        assert env["RAFTKV_LISTEN"] == f"0.0.0.0:{port}"
        assert env["RAFTKV_ADVERTISE"] == f"raftkv{n}:{port}"
        assert env["RAFTKV_METRICS_LISTEN"] == f"0.0.0.0:{9100 + n}"
        # What raftkv-cli's default endpoints and the README promise: loopback only.
        assert svc["ports"] == [f"127.0.0.1:{port}:{port}", f"127.0.0.1:{9100 + n}:{9100 + n}"]
        assert svc["volumes"] == [f"raftkv{n}-data:/data"]
        assert svc["init"] is True and svc["restart"] == "unless-stopped"
        assert svc["healthcheck"]["test"][:3] == ["CMD", "raftkv", "health"]
        assert svc["networks"] == ["raftkv"]
        members[n] = f"raftkv{n}:{port}"
        assert svc["build"]["context"] == "."
    expected = ",".join(f"{n}={a}" for n, a in members.items())
    for n in (1, 2, 3):
        assert services[f"raftkv{n}"]["environment"]["RAFTKV_CLUSTER"] == expected
    for name in ("prometheus", "grafana"):
        svc = services[name]
        image = svc["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: pin a version: {image}"
        assert svc["healthcheck"]["test"] and svc["restart"] == "unless-stopped"
        assert svc["ports"][0].startswith("127.0.0.1:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:v2.")
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert set(doc["volumes"]) == {
        "raftkv1-data", "raftkv2-data", "raftkv3-data", "prometheus-data", "grafana-data",
    }  # fmt: skip

    # The CI override adds build-network settings and nothing else.
    override = yaml.safe_load((ROOT / "deploy/ci/compose.ci.yml").read_text())
    assert set(override) == {"services"}
    for service in override["services"].values():
        assert service == {"build": {"network": "host"}}


def test_prometheus_config_scrapes_the_compose_nodes(tmp_path: Path) -> None:
    path = ROOT / "deploy/prometheus/prometheus.yml"
    config = yaml.safe_load(path.read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    targets = [t for c in jobs["raftkv"]["static_configs"] for t in c["targets"]]
    assert targets == ["raftkv1:9101", "raftkv2:9102", "raftkv3:9103"]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("no promtool on PATH: apt-get install prometheus (deploy/ci/setup.sh)")
    result = run([promtool, "check", "config", str(path)], timeout_s=30, check=False)
    assert result.code == 0, result.describe()


def test_dockerfile_promises() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm$", text, flags=re.M)
    assert re.search(r'^ENTRYPOINT \["raftkv", "serve"\]$', text, flags=re.M)
    assert re.search(r'CMD \["raftkv", "health"', text)
    assert re.search(r"^USER raftkv$", text, flags=re.M)
    assert re.search(r'^VOLUME \["/data"\]$', text, flags=re.M)
    assert re.search(r"^EXPOSE 7001 9101$", text, flags=re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[0] == "*" or "*" in ignored, ".dockerignore starts from nothing"
    assert os.access(ROOT / "deploy/ci/setup.sh", os.X_OK)
    assert os.access(ROOT / "deploy/ci/docker-env.sh", os.X_OK)
