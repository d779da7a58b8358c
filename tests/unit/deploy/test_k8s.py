"""The Kubernetes manifests: every overlay renders, every object is valid against
Kubernetes' own schemas (offline, from kubernetes-validate), and the objects agree
with each other and with the settings the code reads."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from ingest.api.settings import ApiSettings
from ingest.settings import KafkaSettings, MetricsSettings, MlflowSettings
from tests.unit.deploy.manifests import (
    OVERLAYS,
    ROOT,
    by_kind,
    kustomize_command,
    manifest_files,
    one,
    render,
)

KUBERNETES_VERSION = "1.33.0"
"""The oldest Kubernetes the manifests are for (a preStop ``sleep`` needs 1.30)."""

CUSTOM_KINDS = {"ServiceMonitor", "ScaledObject", "TriggerAuthentication"}
"""Kinds of operators (Prometheus Operator, KEDA) whose schemas Kubernetes does not
ship: checked against their CRDs' schemas (kubernetes-models) and field by field."""

CRD_MODELS = ROOT / ".cache" / "crds" / "node_modules"
VALIDATE_CRDS = Path(__file__).with_name("validate_crds.mjs")


def crd_errors(docs: list[dict[str, Any]]) -> dict[str, str | None]:
    """What the operators' CRD schemas say of each object, by ``kind/name``: None if valid."""
    if shutil.which("node") is None or not CRD_MODELS.is_dir():
        pytest.skip("no node or no CRD validators here (`make crd-models` fetches them)")
    out = subprocess.run(
        ["node", str(VALIDATE_CRDS)],
        input=json.dumps(docs),
        env={**os.environ, "CRD_MODELS": str(CRD_MODELS)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return {f"{r['kind']}/{r['name']}": r["error"] for r in json.loads(out)}


SETTINGS = {
    "MATIH_KAFKA_": KafkaSettings,
    "MATIH_MLFLOW_": MlflowSettings,
    "MATIH_METRICS_": MetricsSettings,
    "MATIH_API_": ApiSettings,
}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """One overlay as kustomize renders it; each file on its own where kustomize is absent."""
    if kustomize_command() is None:
        print("no kustomize or kubectl installed: validating each manifest file unrendered")
        return manifest_files()
    return render(request.param)


def test_overlays_exist() -> None:
    assert set(OVERLAYS) == {"dev", "production", "production-hpa"}


def test_every_object_is_valid_for_kubernetes(rendered: list[dict[str, Any]]) -> None:
    """Strict: an unknown field (a typo) is an error, not silently dropped."""
    checked = 0
    for doc in rendered:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 10


def test_every_custom_resource_is_valid_for_its_operator() -> None:
    """Every ScaledObject and ServiceMonitor, as written and as each overlay renders it."""
    docs = [d for d in manifest_files() if d["kind"] in CUSTOM_KINDS]
    if kustomize_command() is not None:
        docs += [d for o in OVERLAYS for d in render(o) if d["kind"] in CUSTOM_KINDS]
    errors = crd_errors(docs)
    assert {key.split("/")[0] for key in errors} == CUSTOM_KINDS
    assert all(error is None for error in errors.values()), errors


def test_the_crd_check_refuses_a_mistyped_field() -> None:
    """The check above can fail: a replica count written as a string is refused."""
    (scaled,) = by_kind(manifest_files(), "ScaledObject")
    wrong = {**scaled, "spec": {**scaled["spec"], "maxReplicaCount": "six"}}
    (error,) = crd_errors([wrong]).values()
    assert error is not None
    assert "maxReplicaCount must be integer" in error


def test_every_setting_named_is_one_the_code_reads(rendered: list[dict[str, Any]]) -> None:
    """A misspelt variable would be ignored by pydantic-settings: none is."""
    for doc in by_kind(rendered, "ConfigMap") + by_kind(rendered, "Secret"):
        values = {**doc.get("data", {}), **doc.get("stringData", {})}
        for key in values:
            prefix = next(p for p in SETTINGS if key.startswith(p))
            field = key.removeprefix(prefix).lower()
            assert field in SETTINGS[prefix].model_fields, f"{key} is read by no settings class"


def test_deployments_probe_health_and_stop_gracefully(rendered: list[dict[str, Any]]) -> None:
    for deployment in by_kind(rendered, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        ports = {p["name"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ports
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert "memory" in container["resources"]["limits"]
        assert spec["terminationGracePeriodSeconds"] >= 30
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        budgets = [
            pdb
            for pdb in by_kind(rendered, "PodDisruptionBudget")
            if pdb["spec"]["selector"]["matchLabels"] == selector
        ]
        assert len(budgets) == 1, f"{deployment['metadata']['name']} has no PodDisruptionBudget"
        policies = [
            policy
            for policy in by_kind(rendered, "NetworkPolicy")
            if policy["spec"]["podSelector"]["matchLabels"] == selector
        ]
        assert len(policies) == 1, f"{deployment['metadata']['name']} has no NetworkPolicy"


def test_service_monitor_scrapes_ports_the_services_have(rendered: list[dict[str, Any]]) -> None:
    (monitor,) = by_kind(rendered, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        s
        for s in by_kind(rendered, "Service")
        if selector.items() <= s["metadata"].get("labels", {}).items()
    ]
    service_ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == service_ports == {"metrics", "http"}
    assert all(e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])


@pytest.mark.parametrize("overlay", ["production", "production-hpa"])
def test_autoscaler_tops_out_at_the_partition_count(overlay: str) -> None:
    """More workers than partitions would idle: the maximum is the partition count,
    the target is the same lag per worker for KEDA and for the HPA."""
    if kustomize_command() is None:
        pytest.skip("no kustomize or kubectl installed: the overlays cannot be rendered")
    docs = render(overlay)
    config = one(docs, "ConfigMap", "matih-ingest")["data"]
    partitions = int(config["MATIH_KAFKA_PARTITIONS"])
    worker = one(docs, "Deployment", "matih-ingest-worker")
    if overlay == "production":
        (scaled,) = by_kind(docs, "ScaledObject")
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
        assert scaled["spec"]["maxReplicaCount"] == partitions
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        # On SASL_SSL (production) the lag counted is the group's on every topic it
        # reads, the shared one and each tenant's: no single topic is named.
        assert "topic" not in meta
        assert (
            scaled["spec"]["triggers"][0]["authenticationRef"]["name"]
            == one(docs, "TriggerAuthentication", "matih-ingest-kafka")["metadata"]["name"]
        )
        assert meta["consumerGroup"] == config["MATIH_KAFKA_CONSUMER_GROUP"]
        assert meta["bootstrapServers"] == config["MATIH_KAFKA_BOOTSTRAP_SERVERS"]
        assert meta["allowIdleConsumers"] == "false"
        threshold = int(meta["lagThreshold"])
    else:
        (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
        assert hpa["spec"]["maxReplicas"] == partitions
        (metric,) = hpa["spec"]["metrics"]
        threshold = int(metric["external"]["target"]["averageValue"])
    # The derivation written beside the ScaledObject: capacity x catch-up / points a record,
    # rounded up to a hundred.
    assert threshold == 100 * math.ceil(53_000 * 30 / 943 / 100)


def test_production_commits_no_secret() -> None:
    if kustomize_command() is None:
        pytest.skip("no kustomize or kubectl installed: the overlays cannot be rendered")
    for overlay in ("production", "production-hpa"):
        assert by_kind(render(overlay), "Secret") == []


@pytest.mark.parametrize("overlay", ["production", "production-hpa"])
def test_production_speaks_sasl_ssl_as_a_principal_per_deployable(overlay: str) -> None:
    """Each deployable authenticates as its own principal, and the CA file the settings
    name is where the CA's Secret is mounted; dev stays plaintext for a first look."""
    if kustomize_command() is None:
        pytest.skip("no kustomize or kubectl installed: the overlays cannot be rendered")
    docs = render(overlay)
    config = one(docs, "ConfigMap", "matih-ingest")["data"]
    assert config["MATIH_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["MATIH_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    for who in ("worker", "gateway"):
        pod = one(docs, "Deployment", f"matih-ingest-{who}")["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        secrets = {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
        assert secrets == {"matih-ingest", f"matih-ingest-{who}-kafka"}
        volumes = {v["name"]: v for v in pod["volumes"]}
        (mount,) = [
            m
            for m in container["volumeMounts"]
            if config["MATIH_KAFKA_CA_FILE"].startswith(m["mountPath"] + "/")
        ]
        assert volumes[mount["name"]]["secret"]["secretName"] == "matih-ingest-kafka-ca"
    assert (
        "MATIH_KAFKA_SECURITY_PROTOCOL"
        not in one(render("dev"), "ConfigMap", "matih-ingest")["data"]
    )
