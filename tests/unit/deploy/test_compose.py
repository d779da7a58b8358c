"""The compose stack: valid against the Compose Specification's JSON schema (the copy
check-jsonschema ships), and laid out as deploy/ promises (3 KRaft brokers, RF 3 with
min ISR 2, 2 workers, Prometheus scraping them and the gateway, Grafana provisioned)."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import jsonschema
import pytest
import yaml

from ingest.api.settings import ApiSettings
from ingest.settings import KafkaSettings, MetricsSettings, MlflowSettings
from tests.unit.deploy.manifests import DEPLOY

COMPOSE = DEPLOY / "compose" / "compose.yaml"
SETTINGS = {
    "MATIH_KAFKA_": KafkaSettings,
    "MATIH_MLFLOW_": MlflowSettings,
    "MATIH_METRICS_": MetricsSettings,
    "MATIH_API_": ApiSettings,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def compose_schema() -> dict[str, Any]:
    vendored = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    return json.loads(vendored.read_text())  # type: ignore[no-any-return]


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_catches_a_misspelt_key(compose: dict[str, Any]) -> None:
    """The check above is not vacuous: a typo in a service is an error."""
    broken = {**compose, "services": {**compose["services"], "x": {"imagee": "python"}}}
    schema = compose_schema()
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


def test_kafka_is_three_kraft_brokers_replicating_three_times(compose: dict[str, Any]) -> None:
    brokers = {name: s for name, s in compose["services"].items() if name.startswith("kafka-")}
    assert len(brokers) == 3
    for service in brokers.values():
        assert service["image"].startswith("apache/kafka:")
        env = service["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    assert len({s["environment"]["KAFKA_NODE_ID"] for s in brokers.values()}) == 3


def test_workers_gateway_and_what_watches_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["command"] == ["worker"]
    assert services["gateway"]["command"] == ["api"]
    assert services["mlflow"]["entrypoint"] == ["mlflow"]
    assert "postgres" in services["mlflow"]["depends_on"]
    for name in ("worker", "gateway"):
        env = services[name]["environment"]
        assert env["MATIH_KAFKA_REPLICATION_FACTOR"] == "3"
        assert env["MATIH_MLFLOW_TRACKING_URI"].startswith("postgresql://")
        for key in env:
            prefix = next(p for p in SETTINGS if key.startswith(p))
            assert key.removeprefix(prefix).lower() in SETTINGS[prefix].model_fields, key
    prometheus = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["matih-ingest-worker"]["dns_sd_configs"][0]["names"] == ["worker"]
    assert jobs["matih-ingest-gateway"]["static_configs"][0]["targets"] == ["gateway:8000"]
    grafana = services["grafana"]["volumes"]
    assert any(v.startswith("../grafana/matih-ingest.json:") for v in grafana)
    assert (DEPLOY / "grafana" / "provisioning" / "dashboards" / "matih-ingest.yaml").exists()
