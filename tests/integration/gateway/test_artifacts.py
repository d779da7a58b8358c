"""Artifacts by claim check, end to end: the SDK stores the files in the run's artifact
location, the worker records their claim checks, the gateway lists them with size and
hash, and MLflow's own server (what its UI reads) lists the same files under the same
run id, in an experiment of the model-training kind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from ingest.layout import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
from producers import ExperimentTracker, RunConfig
from tests.integration.gateway.conftest import GLOBEX_KEY, headers
from tests.integration.support import MlflowServer, WorkerThread

pytestmark = pytest.mark.integration


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_sdk_artifacts_are_listed_by_the_gateway_and_by_mlflows_own_server(
    tracker: ExperimentTracker, worker: WorkerThread, gateway: httpx.Client, tmp_path: Path
) -> None:
    weights, train, test = b"\x00\x01" * 50_000, b"a,b\n1,2\n", b"a,b\n3,4\n"
    (tmp_path / "weights.bin").write_bytes(weights)
    (tmp_path / "data" / "split").mkdir(parents=True)
    (tmp_path / "data" / "train.csv").write_bytes(train)
    (tmp_path / "data" / "split" / "test.csv").write_bytes(test)
    with tracker.start_run("with-files", RunConfig(tenant_id="acme-corp")) as run:
        run.log_metric("loss", 0.5)
        run.log_artifact(tmp_path / "weights.bin", artifact_path="model")
        run.log_artifacts(tmp_path / "data", artifact_path="data")
    tracker.wait_written("acme-corp", run.run_id)

    listed = gateway.get(f"/api/v1/experiments/runs/{run.run_id}/artifacts", headers=headers())
    assert listed.status_code == 200, listed.text
    assert listed.json() == [
        {"path": "data/split/test.csv", "size": len(test), "sha256": sha256(test)},
        {"path": "data/train.csv", "size": len(train), "sha256": sha256(train)},
        {"path": "model/weights.bin", "size": len(weights), "sha256": sha256(weights)},
    ]
    stored = Path(run.artifact_uri)
    assert (stored / "model" / "weights.bin").read_bytes() == weights
    other = gateway.get(
        f"/api/v1/experiments/runs/{run.run_id}/artifacts", headers=headers("globex", GLOBEX_KEY)
    )
    assert other.status_code == 404  # never another tenant's files

    server = MlflowServer(tmp_path / "ui", worker.settings.mlflow.tracking_uri)
    try:
        server.start()  # in the try: a start cut short still stops the process
        with httpx.Client(base_url=f"{server.uri}/api/2.0/mlflow", timeout=30) as mlflow_api:
            files = mlflow_api.get("/artifacts/list", params={"run_id": run.run_id})
            assert files.status_code == 200, files.text
            assert {f["path"]: f.get("file_size") for f in files.json()["files"]} == {
                "data": None,
                "model": None,
            }
            model = mlflow_api.get(
                "/artifacts/list", params={"run_id": run.run_id, "path": "model"}
            ).json()["files"]
            assert model == [
                {"path": "model/weights.bin", "is_dir": False, "file_size": len(weights)}
            ]
            found = mlflow_api.get(
                "/experiments/get-by-name", params={"experiment_name": "acme-corp/with-files"}
            )
            tags = {t["key"]: t["value"] for t in found.json()["experiment"]["tags"]}
            assert tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    finally:
        server.stop()
