"""How runs are laid out in MLflow: tenant-namespaced experiments and mapping tags.

The writer (consumers) and the readers (SDK, gateway) both go through these names,
so that a run is found exactly where it was written.
"""

from __future__ import annotations

import uuid

from ingest.events import TERMINAL_STATUSES, RunStatus
from ingest.validation import ARTIFACT_TAG_PREFIX

TENANT_TAG = "matih.tenant_id"
"""On experiments and runs: the tenant that owns them."""
RUN_ID_TAG = "matih.run_id"
"""On runs: the producer's run id (MLflow picks its own ids)."""
EXPERIMENT_NAME_TAG = "matih.experiment_name"
"""On experiments: the name the tenant gave, without the namespace."""
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
DESCRIPTION_TAG = "mlflow.note.content"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
"""On experiments: which of its views MLflow 3's UI files the experiment under."""
MODEL_TRAINING_KIND = "custom_model_development"
"""The experiment kind of model training (MLflow 3's UI, ``ExperimentKind``); an experiment
without a kind is shown under the GenAI views."""
DEFAULT_EXPERIMENT_NAME = "Default"
"""The experiment MLflow's clients log to when none is set (MLflow's id ``"0"``)."""
ARTIFACTS_FOLDER = "artifacts"
"""The folder of a run's artifacts under its experiment's location (MLflow's rule)."""

MLFLOW_STATUS = {
    RunStatus.RUNNING: "RUNNING",
    RunStatus.FINISHED: "FINISHED",
    RunStatus.FAILED: "FAILED",
    RunStatus.KILLED: "KILLED",
}
"""A run status as MLflow stores it."""


def artifact_tag(path: str, size: int, sha256: str) -> tuple[str, str]:
    """The tag that records an artifact the workers were told of."""
    return f"{ARTIFACT_TAG_PREFIX}{path}", f"{size} {sha256}"


def recorded_artifacts(tags: dict[str, str]) -> dict[str, tuple[int, str]]:
    """The artifacts a run's tags record: path -> (size in bytes, sha256)."""
    found = {}
    for key, value in tags.items():
        if key.startswith(ARTIFACT_TAG_PREFIX):
            size, _, sha256 = value.partition(" ")
            found[key.removeprefix(ARTIFACT_TAG_PREFIX)] = (int(size), sha256)
    return found


_RUN_STATUS = {name: status for status, name in MLFLOW_STATUS.items()} | {
    "SCHEDULED": RunStatus.RUNNING,
}


def run_status(mlflow_status: str) -> RunStatus:
    """The spec's status of a run that MLflow stores in ``mlflow_status``.

    MLflow's SCHEDULED run has not ended, so it is running; so is any status a later
    MLflow adds, until this mapping learns it.
    """
    return _RUN_STATUS.get(mlflow_status, RunStatus.RUNNING)


def has_ended(mlflow_status: str) -> bool:
    """Whether a run that MLflow stores in ``mlflow_status`` has ended (and takes no more)."""
    return run_status(mlflow_status) in TERMINAL_STATUSES


_SEPARATOR = "/"


def experiment_artifact_location(artifact_root: str, tenant_id: str) -> str:
    """Where the experiments created here keep artifacts: a folder per tenant."""
    return f"{artifact_root.rstrip('/')}/{tenant_id}"


def run_artifact_uri(experiment_location: str, run_id: str) -> str:
    """A run's artifact location, as MLflow's ``create_run`` derives it from its experiment's."""
    return f"{experiment_location.rstrip('/')}/{run_id}/{ARTIFACTS_FOLDER}"


_EXPERIMENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:matih:experiment")


def experiment_id_of(tenant_id: str, name: str) -> str:
    """The id of a tenant's experiment, the same on every producer and reader and needing no
    state: its name if that is a UUID, else a UUIDv5 of tenant and name."""
    try:
        if str(uuid.UUID(name)) == name:
            return name
    except ValueError:
        pass
    return str(uuid.uuid5(_EXPERIMENT_NAMESPACE, f"{tenant_id}/{name}"))


def mlflow_experiment_name(tenant_id: str, experiment_name: str) -> str:
    """The MLflow experiment that holds a tenant's experiment: ``<tenant>/<name>``."""
    return f"{tenant_id}{_SEPARATOR}{experiment_name}"


def quote(value: str) -> str:
    """``value`` as a string literal in an MLflow search filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def tenant_filter(tenant_id: str) -> str:
    """The MLflow search filter that keeps one tenant's experiments or runs."""
    return f"tags.`{TENANT_TAG}` = {quote(tenant_id)}"


def run_filter(tenant_id: str, run_id: str) -> str:
    """The MLflow search filter that finds the run a producer named."""
    return f"{tenant_filter(tenant_id)} and tags.`{RUN_ID_TAG}` = {quote(run_id)}"
