"""How runs are laid out in MLflow: tenant-namespaced experiments and mapping tags.

The writer (consumers) and the readers (SDK, gateway) both go through these names,
so that a run is found exactly where it was written.
"""

from __future__ import annotations

from ingest.events import TERMINAL_STATUSES, RunStatus

TENANT_TAG = "matih.tenant_id"
"""On experiments and runs: the tenant that owns them."""
RUN_ID_TAG = "matih.run_id"
"""On runs: the producer's run id (MLflow picks its own ids)."""
EXPERIMENT_NAME_TAG = "matih.experiment_name"
"""On experiments: the name the tenant gave, without the namespace."""
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
DESCRIPTION_TAG = "mlflow.note.content"

MLFLOW_STATUS = {
    RunStatus.RUNNING: "RUNNING",
    RunStatus.FINISHED: "FINISHED",
    RunStatus.FAILED: "FAILED",
    RunStatus.KILLED: "KILLED",
}
"""A run status as MLflow stores it."""

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
