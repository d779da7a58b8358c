"""The spec's REST examples, sent verbatim, land in MLflow exactly."""

from __future__ import annotations

import time

import httpx
import pytest
from mlflow.tracking import MlflowClient

from ingest.api import ApiSettings
from ingest.ids import run_id_time_ms
from tests.integration.gateway.conftest import headers

pytestmark = pytest.mark.integration

RUNS = "/api/v1/experiments/runs"
SPEC_EXPERIMENT_ID = "550e8400-e29b-41d4-a716-446655440000"

CREATE = b"""{
  "experiment_id": "550e8400-e29b-41d4-a716-446655440000",
  "name": "xgboost-lr-0.01-depth-6",
  "description": "XGBoost with learning rate 0.01 and max depth 6",
  "tags": {
    "model_type": "xgboost",
    "dataset_version": "v2.1"
  }
}"""
LOG_METRICS = b"""{
  "metrics": {
    "train_loss": 0.342,
    "val_loss": 0.389,
    "val_accuracy": 0.876,
    "val_f1": 0.851
  },
  "step": 15,
  "timestamp": 1707723600000
}"""
LOG_PARAMS = b"""{
  "params": {
    "learning_rate": "0.01",
    "max_depth": "6",
    "n_estimators": "200",
    "subsample": "0.8",
    "colsample_bytree": "0.7"
  }
}"""
LOG_BATCH = b"""{
  "metrics": [
    {"key": "loss", "value": 0.342, "step": 1},
    {"key": "loss", "value": 0.298, "step": 2},
    {"key": "loss", "value": 0.256, "step": 3}
  ],
  "params": [
    {"key": "optimizer", "value": "adam"},
    {"key": "batch_size", "value": "64"}
  ],
  "tags": [
    {"key": "run_type", "value": "hyperparameter_search"},
    {"key": "gpu_model", "value": "A100"}
  ]
}"""


def post(client: httpx.Client, path: str, body: bytes | None = None) -> httpx.Response:
    return client.post(
        path, content=body, headers={**headers(), "Content-Type": "application/json"}
    )


def test_the_spec_examples_work_verbatim(gateway: httpx.Client, api_settings: ApiSettings) -> None:
    """Create, log metrics, params and a batch, end: each answer has the documented shape,
    and MLflow holds exactly what was sent."""
    before = time.time_ns() // 1_000_000
    created = post(gateway, RUNS, CREATE)
    assert created.status_code == 201, created.text
    run = created.json()
    run_id = run["run_id"]
    assert run["status"] == "running"
    assert run["experiment_id"] == SPEC_EXPERIMENT_ID
    assert run["name"] == "xgboost-lr-0.01-depth-6"
    assert run["start_time"] == run_id_time_ms(run_id)
    assert before <= run["start_time"] <= time.time_ns() // 1_000_000

    for path, body in (
        ("log-metrics", LOG_METRICS),
        ("log-params", LOG_PARAMS),
        ("log-batch", LOG_BATCH),
    ):
        accepted = post(gateway, f"{RUNS}/{run_id}/{path}", body)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["message"] == "Accepted"
        assert accepted.json()["run_id"] == run_id
    assert len(accepted.json()["event_ids"]) == 3

    ended = post(gateway, f"{RUNS}/{run_id}/end?status=finished")
    assert ended.status_code == 200, ended.text
    answer = ended.json()
    token = answer.pop("consistency_token")
    duration = answer.pop("duration_seconds")
    assert answer == {"message": "Run ended", "run_id": run_id, "status": "finished"}
    assert 0 <= duration < 60

    got = gateway.get(f"{RUNS}/{run_id}", params={"after": token}, headers=headers())
    assert got.status_code == 200, got.text
    view = got.json()
    assert view["status"] == "finished"
    assert view["duration_seconds"] == duration
    assert view["end_time"] - view["start_time"] == round(duration * 1000)
    assert view["experiment_id"] == SPEC_EXPERIMENT_ID
    assert view["description"] == "XGBoost with learning rate 0.01 and max depth 6"
    assert view["params"] == {
        "learning_rate": "0.01",
        "max_depth": "6",
        "n_estimators": "200",
        "subsample": "0.8",
        "colsample_bytree": "0.7",
        "optimizer": "adam",
        "batch_size": "64",
    }
    assert view["tags"] == {
        "model_type": "xgboost",
        "dataset_version": "v2.1",
        "run_type": "hyperparameter_search",
        "gpu_model": "A100",
    }
    assert view["metrics"] == {
        "train_loss": 0.342,
        "val_loss": 0.389,
        "val_accuracy": 0.876,
        "val_f1": 0.851,
        "loss": 0.256,
    }

    history = gateway.get(f"{RUNS}/{run_id}/metrics/val_loss/history", headers=headers())
    assert history.status_code == 200
    assert history.json() == [
        {"key": "val_loss", "value": 0.389, "timestamp": 1707723600000, "step": 15}
    ]
    loss = gateway.get(f"{RUNS}/{run_id}/metrics/loss/history", headers=headers()).json()
    assert [(p["step"], p["value"]) for p in loss] == [(1, 0.342), (2, 0.298), (3, 0.256)]

    listed = gateway.get(
        RUNS,
        params={
            "experiment_id": SPEC_EXPERIMENT_ID,
            "status": "finished",
            "limit": 50,
            "offset": 0,
        },
        headers=headers(),
    )
    assert listed.status_code == 200
    assert [r["run_id"] for r in listed.json()["runs"]] == [run_id]

    # Read back through MLflow's own client, not the gateway.
    client = MlflowClient(tracking_uri=api_settings.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(f"acme-corp/{SPEC_EXPERIMENT_ID}")
    assert experiment is not None
    assert experiment.tags["matih.tenant_id"] == "acme-corp"
    (stored,) = client.search_runs([experiment.experiment_id])
    assert stored.info.status == "FINISHED"
    assert stored.info.run_name == "xgboost-lr-0.01-depth-6"
    assert stored.data.tags["matih.run_id"] == run_id
    assert stored.info.start_time == run["start_time"]
    assert stored.data.params["colsample_bytree"] == "0.7"
    points = client.get_metric_history(stored.info.run_id, "train_loss")
    assert [(p.value, p.step, p.timestamp) for p in points] == [(0.342, 15, 1707723600000)]
