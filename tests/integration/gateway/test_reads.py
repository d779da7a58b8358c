"""Reads come from MLflow; with a consistency token they see the write at once."""

from __future__ import annotations

import sys
import time
import uuid

import httpx
import pytest
from mlflow.tracking import MlflowClient

from ingest.api import ApiSettings
from tests.integration.gateway.conftest import headers
from tests.integration.gateway.support import serving

pytestmark = pytest.mark.integration

RUNS = "/api/v1/experiments/runs"
EXPERIMENTS = "/api/v1/experiments"


def test_create_then_list_with_the_token_returns_the_run_at_once(gateway: httpx.Client) -> None:
    """Name an experiment, start a run in it by id, list the experiment's runs with the
    token: the run is there on the first read, running."""
    declared = gateway.post(EXPERIMENTS, json={"name": "fraud-detection-v3"}, headers=headers())
    assert declared.status_code == 201
    experiment_id = declared.json()["experiment_id"]
    assert str(uuid.UUID(experiment_id)) == experiment_id
    listed = gateway.get(EXPERIMENTS, headers=headers()).json()["experiments"]
    assert listed == [
        {"experiment_id": experiment_id, "name": "fraud-detection-v3", "creation_time": None}
    ]

    created = gateway.post(
        RUNS, json={"experiment_id": experiment_id, "name": "first"}, headers=headers()
    ).json()
    assert created["experiment_name"] == "fraud-detection-v3"
    page = gateway.get(
        RUNS,
        params={"experiment_id": experiment_id, "after": created["consistency_token"]},
        headers=headers(),
    )
    assert page.status_code == 200, page.text
    (run,) = page.json()["runs"]
    assert run["run_id"] == created["run_id"]
    assert run["status"] == "running"
    assert run["experiment_id"] == experiment_id
    assert run["name"] == "first"
    assert run["start_time"] == created["start_time"]
    assert run["end_time"] is None
    assert run["duration_seconds"] is None

    again = gateway.post(EXPERIMENTS, json={"name": "fraud-detection-v3"}, headers=headers())
    assert again.status_code == 200
    assert again.json()["experiment_id"] == experiment_id
    assert again.json()["creation_time"] is not None


def test_runs_are_paged_newest_first_and_filtered_by_status_and_experiment(
    gateway: httpx.Client,
) -> None:
    ids = []
    for i, experiment in enumerate(("a", "a", "a", "b")):
        created = gateway.post(
            RUNS, json={"experiment_name": experiment, "name": f"r{i}"}, headers=headers()
        )
        ids.append(created.json()["run_id"])
        time.sleep(0.005)  # distinct start times
    gateway.post(f"{RUNS}/{ids[0]}/end", params={"status": "finished"}, headers=headers())
    token = gateway.post(
        f"{RUNS}/{ids[1]}/end", params={"status": "failed"}, headers=headers()
    ).json()["consistency_token"]

    def runs(**params: object) -> tuple[list[str], bool]:
        page = gateway.get(RUNS, params={"after": token, **params}, headers=headers())
        assert page.status_code == 200, page.text
        return [r["run_id"] for r in page.json()["runs"]], page.json()["has_more"]

    newest_first = ids[::-1]
    assert runs() == (newest_first, False)
    assert runs(limit=2) == (newest_first[:2], True)
    assert runs(limit=2, offset=2) == (newest_first[2:], False)
    assert runs(offset=4) == ([], False)
    assert runs(status="finished") == ([ids[0]], False)
    assert runs(status="failed") == ([ids[1]], False)
    assert runs(status="running") == ([ids[3], ids[2]], False)
    assert runs(status="killed") == ([], False)
    assert runs(experiment_name="b") == ([ids[3]], False)
    assert runs(experiment_name="a", status="running") == ([ids[2]], False)
    assert runs(experiment_id=str(uuid.uuid4())) == ([], False)


def test_params_are_stringified_and_metrics_default_to_the_gateways_clock(
    gateway: httpx.Client, api_settings: ApiSettings
) -> None:
    run_id = gateway.post(RUNS, json={"experiment_name": "e"}, headers=headers()).json()["run_id"]
    gateway.post(
        f"{RUNS}/{run_id}/log-params",
        json={"params": {"learning_rate": 0.01, "max_depth": 6, "early_stop": True, "opt": "adam"}},
        headers=headers(),
    )
    before = time.time_ns() // 1_000_000
    token = gateway.post(
        f"{RUNS}/{run_id}/log-metrics", json={"metrics": {"loss": 0.5}}, headers=headers()
    ).json()["consistency_token"]
    after = time.time_ns() // 1_000_000

    history = gateway.get(
        f"{RUNS}/{run_id}/metrics/loss/history", params={"after": token}, headers=headers()
    ).json()
    (point,) = history
    assert point["step"] == 0
    assert point["value"] == 0.5
    assert before <= point["timestamp"] <= after

    client = MlflowClient(tracking_uri=api_settings.mlflow.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("acme-corp/e").experiment_id])
    assert run.data.params == {
        "learning_rate": "0.01",
        "max_depth": "6",
        "early_stop": "True",
        "opt": "adam",
    }
    assert gateway.get(f"{RUNS}/{run_id}/metrics/nothing/history", headers=headers()).json() == []


def test_non_finite_metric_values_read_back_as_strings(gateway: httpx.Client) -> None:
    """NaN reads back as the string "NaN" (JSON has no NaN); MLflow's SQL store keeps
    infinities as the largest finite floats, so they read back as those."""
    run_id = gateway.post(RUNS, json={"experiment_name": "e"}, headers=headers()).json()["run_id"]
    token = gateway.post(
        f"{RUNS}/{run_id}/log-metrics",
        content=b'{"metrics": {"a": NaN, "b": Infinity, "c": -Infinity, "d": 1}, "step": 3}',
        headers={**headers(), "Content-Type": "application/json"},
    ).json()["consistency_token"]
    run = gateway.get(f"{RUNS}/{run_id}", params={"after": token}, headers=headers()).json()
    biggest = sys.float_info.max
    assert run["metrics"] == {"a": "NaN", "b": biggest, "c": -biggest, "d": 1.0}
    history = gateway.get(f"{RUNS}/{run_id}/metrics/a/history", headers=headers()).json()
    assert [p["value"] for p in history] == ["NaN"]


def test_a_run_started_by_another_gateway_is_found_in_mlflow_and_loggable(
    gateway: httpx.Client, api_settings: ApiSettings
) -> None:
    """A second gateway, which did not start the run, finds it in MLflow by tenant and id:
    log calls reach it in its experiment, and a finished run cannot be ended again."""
    created = gateway.post(
        RUNS, json={"experiment_name": "elsewhere", "name": "first"}, headers=headers()
    ).json()
    run_id = created["run_id"]
    logged = gateway.post(
        f"{RUNS}/{run_id}/log-metrics", json={"metrics": {"loss": 0.9}}, headers=headers()
    )
    ended = gateway.post(f"{RUNS}/{run_id}/end", headers=headers()).json()
    assert logged.status_code == 202
    assert (
        gateway.get(
            f"{RUNS}/{run_id}", params={"after": ended["consistency_token"]}, headers=headers()
        ).json()["status"]
        == "finished"
    )

    with serving(api_settings) as other:
        late = other.post(
            f"{RUNS}/{run_id}/log-metrics",
            json={"metrics": {"loss": 0.8}, "step": 1},
            headers=headers(),
        )
        assert late.status_code == 202, late.text
        history = other.get(
            f"{RUNS}/{run_id}/metrics/loss/history",
            params={"after": late.json()["consistency_token"]},
            headers=headers(),
        ).json()
        assert [(p["step"], p["value"]) for p in history] == [(0, 0.9), (1, 0.8)]
        view = other.get(f"{RUNS}/{run_id}", headers=headers()).json()
        assert view["experiment_name"] == "elsewhere"
        assert view["status"] == "finished"
        again = other.post(f"{RUNS}/{run_id}/end", headers=headers())
        assert again.status_code == 409
        assert other.get(f"{RUNS}/{run_id}", headers=headers("globex", None)).status_code == 401
        assert (
            other.post(
                f"{RUNS}/{run_id}/log-params",
                json={"params": {"a": "1"}},
                headers=headers("globex", "key-globex-0001"),
            ).status_code
            == 404
        )
