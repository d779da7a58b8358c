"""Existing MLflow code logs through the pipeline unchanged: the same fluent-API script
under ``sqlite:///`` and under ``matih://`` (real Kafka, a real worker, a real store)
reads back the same through MLflow's own client, and the run ids are the producer's."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS

from consumers import ConsumerSettings
from ingest.ids import is_run_id, run_id_time_ms
from ingest.layout import (
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    RUN_ID_TAG,
    recorded_artifacts,
)
from ingest.settings import WritePath
from ingest.tracking.reader import RunReader
from producers.mlflow.autolog import NOT_LOGGED
from tests.integration.mlflow_plugin import matih_uri, read_back, run_script
from tests.integration.support import MlflowServer, WorkerThread

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_run_left_active() -> Iterator[None]:
    """A failed test must not leave MLflow's fluent state to the next one."""
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.mark.parametrize(
    "mlflow_settings", [WritePath.AUTO, WritePath.API], ids=["bulk", "store-api"], indirect=True
)
def test_the_fluent_api_lands_as_it_does_in_mlflows_own_store(
    worker: WorkerThread,
    new_sqlite_store: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """start_run as a context manager with nested runs, log_metric(s), log_param(s),
    set_tag(s), log_batch, end_run(status), and a run that raises: what MLflow's client
    reads back through the plugin equals what it reads from a plain sqlite store."""
    expected_uri = new_sqlite_store("expected")
    run_script(expected_uri, "sweep")
    expected = read_back(expected_uri, "sweep")

    uri, tenant = matih_uri(worker.settings, monkeypatch, tmp_path)
    ids = run_script(uri, "sweep")
    actual = read_back(uri, "sweep")

    assert [run["name"] for run in expected] == [
        "broken", "child-a", "child-b", "explicit", "parent"
    ]  # fmt: skip
    assert [run["status"] for run in expected] == [
        "FAILED", "FINISHED", "KILLED", "FAILED", "FINISHED"
    ]  # fmt: skip
    assert actual == expected

    # One run id everywhere: the id mlflow.active_run() gave is the producer's (a UUIDv7),
    # and every read takes it. On the bulk path it is MLflow's own id in the store too; on
    # the store-API path MLflow picked its own, and the run carries the producer's in a tag.
    store = MlflowClient(tracking_uri=worker.settings.mlflow.tracking_uri)
    bulk = worker.settings.mlflow.write_path is WritePath.AUTO
    for run_id in ids:
        assert is_run_id(run_id)
        assert run_id_time_ms(run_id) is not None
        assert MlflowClient(tracking_uri=uri).get_run(run_id).info.run_id == run_id
        stored = RunReader(worker.settings.mlflow.tracking_uri).find_run(tenant, run_id)
        assert stored is not None
        assert (stored.info.run_id == run_id) is bulk
        assert stored.data.tags[RUN_ID_TAG] == run_id
    experiment = store.get_experiment_by_name(f"{tenant}/sweep")
    assert experiment is not None
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND


def test_bad_input_raises_at_the_call_and_loses_nothing_else(
    worker: WorkerThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A key MLflow forbids, a reserved tag and an unsupported call each raise an
    MlflowException naming the field or the call; the run goes on and lands complete."""
    uri, _ = matih_uri(worker.settings, monkeypatch, tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bad-input")
    client = MlflowClient()
    with mlflow.start_run(run_name="survivor") as run:
        mlflow.log_metric("good", 1.0, step=0)
        with pytest.raises(MlflowException, match=r"metrics\[0\]\.key 'a\*b' may only contain"):
            mlflow.log_metric("a*b", 2.0)
        with pytest.raises(MlflowException, match=r"metrics\[0\]\.value must be a number"):
            mlflow.log_metric("good", "high")  # type: ignore[arg-type]
        with pytest.raises(MlflowException, match=r"tag key 'matih\.run_id': the prefix 'matih\.'"):
            mlflow.set_tag("matih.run_id", "another")
        with pytest.raises(MlflowException, match=r"^delete_run\(\) is not supported by the matih"):
            client.delete_run(run.info.run_id)
        with pytest.raises(MlflowException, match=r"^create_logged_model\(\) is not supported"):
            mlflow.create_external_model(name="m")
        mlflow.log_metric("good", 3.0, step=1)
    landed = client.get_run(run.info.run_id)
    assert landed.info.status == "FINISHED"
    assert landed.data.metrics == {"good": 3.0}
    assert [m.value for m in client.get_metric_history(run.info.run_id, "good")] == [1.0, 3.0]
    assert "matih.run_id" not in landed.data.tags


def test_a_run_without_an_experiment_lands_in_the_tenants_default_experiment(
    worker: WorkerThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MLflow's default experiment ("0", where a script that sets none logs) is the tenant's
    ``Default``: created by the workers with the first run, of the model-training kind,
    found by id and by name."""
    uri, tenant = matih_uri(worker.settings, monkeypatch, tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id="0")  # this process's earlier tests set others
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5)
    assert run.info.experiment_id == "0"
    client = MlflowClient()
    landed = client.get_run(run.info.run_id)
    default = client.get_experiment_by_name("Default")
    assert default is not None
    assert landed.info.experiment_id == default.experiment_id == "0"
    assert client.get_experiment("0").name == "Default"
    assert landed.data.metrics == {"loss": 0.5}
    assert default.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    stored = MlflowClient(tracking_uri=worker.settings.mlflow.tracking_uri)
    assert stored.get_experiment_by_name(f"{tenant}/Default") is not None


def test_a_malformed_tracking_uri_is_refused_in_one_line() -> None:
    """The URI names the broker and the tenant, nothing else; a mistake says how to write it."""
    with pytest.raises(MlflowException, match="unknown parameter 'tenat'; use matih://"):
        MlflowClient(tracking_uri="matih://127.0.0.1:1?tenat=acme").search_experiments()
    with pytest.raises(MlflowException, match="tenant id 'a b' must be 1-64 letters"):
        MlflowClient(tracking_uri="matih://127.0.0.1:1?tenant=a%20b").search_experiments()


def files_to_log(
    worker: WorkerThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, experiment: str
) -> str:
    """MLflow's fluent API set to the plugin and ``experiment``, and in ``tmp_path`` a
    ``report.txt`` and a ``plots/`` folder with ``loss.svg``; the tenant."""
    uri, tenant = matih_uri(worker.settings, monkeypatch, tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    (tmp_path / "report.txt").write_text("accuracy 0.9\n")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.svg").write_text("<svg/>")
    return tenant


def test_mlflow_log_artifact_goes_by_claim_check_and_lands_in_the_runs_location(
    worker: WorkerThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """mlflow.log_artifact(s) queue the files on the SDK's uploader; the run ends once they
    are stored, and records each with size and hash; MLflow lists them under the run."""
    tenant = files_to_log(worker, monkeypatch, tmp_path, "files")
    with mlflow.start_run() as run:
        assert run.info.artifact_uri == f"matih-artifacts:/{run.info.run_id}"
        mlflow.log_artifact(str(tmp_path / "report.txt"))
        mlflow.log_artifacts(str(tmp_path / "plots"), artifact_path="plots")
        with pytest.raises(MlflowException, match=r"artifact path '\.\./report.txt' escapes"):
            mlflow.log_artifact(str(tmp_path / "report.txt"), artifact_path="..")
        with pytest.raises(MlflowException, match=r"artifact '.*/nothing.txt' does not exist"):
            mlflow.log_artifact(str(tmp_path / "nothing.txt"))
        listed = MlflowClient().list_artifacts(run.info.run_id)
        assert sorted(f.path for f in listed) == ["plots", "report.txt"]

    ended = MlflowClient().get_run(run.info.run_id)
    assert ended.info.status == "FINISHED"
    location = Path(ended.info.artifact_uri)
    assert location == Path(worker.settings.mlflow.artifact_root) / tenant / run.info.run_id / (
        "artifacts"
    )
    assert (location / "plots" / "loss.svg").read_text() == "<svg/>"
    stored = MlflowClient(tracking_uri=worker.settings.mlflow.tracking_uri).get_run(run.info.run_id)
    assert recorded_artifacts(dict(stored.data.tags)) == {
        "plots/loss.svg": (6, hashlib.sha256(b"<svg/>").hexdigest()),
        "report.txt": (13, hashlib.sha256(b"accuracy 0.9\n").hexdigest()),
    }


@pytest.mark.slow
@pytest.mark.timeout(360)  # an mlflow server takes a minute or more to start on busy cores
def test_mlflows_ui_lists_the_plugins_artifacts_in_a_model_training_experiment(
    worker: WorkerThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run logged with mlflow.log_artifact(s) through the plugin: once the workers wrote
    it, MLflow's own server over the same store answers the endpoints its UI calls (the
    Artifacts tab and the experiment page) with the files, their sizes, and the
    model-training kind."""
    tenant = files_to_log(worker, monkeypatch, tmp_path, "files-in-the-ui")
    (tmp_path / "plots" / "roc.svg").write_text("<svg></svg>")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5)
        mlflow.log_artifact(str(tmp_path / "report.txt"))
        mlflow.log_artifacts(str(tmp_path / "plots"), artifact_path="plots")
    assert MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"  # workers wrote it

    server = MlflowServer(tmp_path / "ui", worker.settings.mlflow.tracking_uri)
    try:
        server.start()  # in the try: a start cut short still stops the process
        with httpx.Client(base_url=f"{server.uri}/ajax-api/2.0/mlflow", timeout=30) as ui:
            top = ui.get("/artifacts/list", params={"run_id": run.info.run_id})
            assert top.status_code == 200, top.text
            assert top.json()["files"] == [
                {"path": "plots", "is_dir": True},
                {"path": "report.txt", "is_dir": False, "file_size": 13},
            ]
            plots = ui.get("/artifacts/list", params={"run_id": run.info.run_id, "path": "plots"})
            assert plots.status_code == 200, plots.text
            assert plots.json()["files"] == [
                {"path": "plots/loss.svg", "is_dir": False, "file_size": 6},
                {"path": "plots/roc.svg", "is_dir": False, "file_size": 11},
            ]
            found = ui.get(
                "/experiments/get-by-name",
                params={"experiment_name": f"{tenant}/files-in-the-ui"},
            )
            assert found.status_code == 200, found.text
            experiment = found.json()["experiment"]
            tags = {t["key"]: t["value"] for t in experiment["tags"]}
            assert tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
            runs = ui.post(
                "/runs/search", json={"experiment_ids": [experiment["experiment_id"]]}
            ).json()["runs"]
            assert [r["info"]["run_id"] for r in runs] == [run.info.run_id]
    finally:
        server.stop()


def autolog_script(
    tracking_uri: str, autolog: Callable[..., object] = mlflow.sklearn.autolog, **options: bool
) -> None:
    """scikit-learn training with MLflow's autologging, as users write it: two fits, each in
    a run, and a metric of the model's predictions (a post-training metric)."""
    import sklearn.metrics  # noqa: PLC0415 - only these tests need sklearn
    from sklearn.datasets import load_iris  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    features, labels = load_iris(return_X_y=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("autolog")
    autolog(**options)
    try:
        for name, strength in (("iris", 1.0), ("iris-regularised", 0.1)):
            with mlflow.start_run(run_name=name):
                model = LogisticRegression(C=strength, max_iter=300).fit(features, labels)
                # Through the module: autologging patches sklearn.metrics' functions.
                sklearn.metrics.accuracy_score(labels, model.predict(features))
    finally:
        autolog(disable=True)


AUTOLOG_FILES = ["estimator.html", "metric_info.json", "training_confusion_matrix.png"]
"""What scikit-learn's autologging stores with each run: it writes them to a temporary
folder, which it deletes as soon as each log_artifact call returns."""


def run_files(tracking_uri: str, experiment_name: str) -> dict[str, list[tuple[str, int]]]:
    """The top-level artifacts (path, size) of each run of the experiment, by run name."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None
    return {
        run.info.run_name: sorted(
            (f.path, f.file_size) for f in client.list_artifacts(run.info.run_id)
        )
        for run in client.search_runs([experiment.experiment_id])
    }


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sklearn_autolog_lands_as_it_does_in_mlflows_own_store(
    worker: WorkerThread,
    new_sqlite_store: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """mlflow.sklearn.autolog(log_models=False, log_datasets=False): the estimator's params,
    its training and post-training metrics and tags read back the same as from a plain
    sqlite store."""
    expected_uri = new_sqlite_store("expected")
    autolog_script(expected_uri, silent=True, log_models=False, log_datasets=False)
    expected = read_back(expected_uri, "autolog")

    uri, _ = matih_uri(worker.settings, monkeypatch, tmp_path)
    autolog_script(uri, silent=True, log_models=False, log_datasets=False)
    actual = read_back(uri, "autolog")

    assert [run["name"] for run in expected] == ["iris", "iris-regularised"]
    assert expected[0]["params"]["max_iter"] == "300"
    assert set(expected[0]["metrics"]) >= {"training_accuracy_score", "training_f1_score"}
    assert actual == expected
    files = run_files(expected_uri, "autolog")
    assert run_files(uri, "autolog") == files
    assert [path for path, _ in files["iris"]] == AUTOLOG_FILES


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_mlflow_autolog_with_its_defaults_lands_as_in_mlflows_own_store_with_one_warning(
    worker: WorkerThread,
    new_sqlite_store: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """mlflow.autolog() as it comes (models and datasets on): params, training and
    post-training metrics and tags read back the same as from a plain sqlite store,
    where MLflow also logged the models and datasets. Through the plugin neither is
    logged, and the whole process gets one warning saying so and how to turn them off;
    no fit fails."""
    # An explicit mlflow.sklearn.autolog() (an earlier test's) would take precedence over
    # mlflow.autolog(), as MLflow documents: start from none, as a fresh process does.
    monkeypatch.delitem(AUTOLOGGING_INTEGRATIONS, "sklearn", raising=False)
    expected_uri = new_sqlite_store("expected")
    autolog_script(expected_uri, mlflow.autolog)
    expected = read_back(expected_uri, "autolog")
    stored = MlflowClient(tracking_uri=expected_uri)
    experiment = stored.get_experiment_by_name("autolog")
    assert experiment is not None
    models = stored.search_logged_models([experiment.experiment_id])
    assert len(models) == 2  # what MLflow's own store has and the plugin does not take

    caplog.clear()
    caplog.set_level(logging.WARNING)
    uri, _ = matih_uri(worker.settings, monkeypatch, tmp_path)
    autolog_script(uri, mlflow.autolog)
    actual = read_back(uri, "autolog")

    assert [run["name"] for run in expected] == ["iris", "iris-regularised"]
    assert {"training_accuracy_score", "training_log_loss"} <= set(expected[1]["metrics"])
    assert "accuracy_score_features" in expected[0]["metrics"]  # the post-training metric
    assert actual == expected
    files = run_files(expected_uri, "autolog")
    assert run_files(uri, "autolog") == files
    assert {name: [path for path, _ in listed] for name, listed in files.items()} == dict.fromkeys(
        ("iris", "iris-regularised"), AUTOLOG_FILES
    )
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith(("mlflow", "producers"))
    ]
    assert warned == [NOT_LOGGED]  # the datasets' or the model's, whichever came first
    store = MlflowClient(tracking_uri=worker.settings.mlflow.tracking_uri)
    landed = store.search_runs([e.experiment_id for e in store.search_experiments()])
    assert len(landed) == 2
    assert all(run.inputs.dataset_inputs == [] for run in landed)
    assert all(run.outputs.model_outputs == [] for run in landed)


def test_log_artifact_does_not_wait_for_the_workers(
    consumer_settings: ConsumerSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no worker running, mlflow.log_artifact returns at once (MLflow's client does not
    read the run to find where its files go); the files and their claim checks land once
    a worker runs."""
    uri, tenant = matih_uri(consumer_settings, monkeypatch, tmp_path)
    monkeypatch.setenv("MATIH_PRODUCER_READ_WAIT_S", "30")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("workers-away")
    (tmp_path / "notes.txt").write_text("n")
    with mlflow.start_run() as run:
        started = time.monotonic()
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_artifact(str(tmp_path / "notes.txt"), artifact_path="again")
        assert time.monotonic() - started < 2.0
    worker = WorkerThread(consumer_settings)
    worker.start()
    try:
        landed = MlflowClient().get_run(run.info.run_id)  # waits for the worker
    finally:
        worker.stop()
    assert landed.info.status == "FINISHED"
    stored = RunReader(consumer_settings.mlflow.tracking_uri).find_run(tenant, run.info.run_id)
    assert stored is not None
    assert set(recorded_artifacts(dict(stored.data.tags))) == {"notes.txt", "again/notes.txt"}
