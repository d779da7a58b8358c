"""A tenant's experiments in MLflow: found by name within the tenant, or created."""

from __future__ import annotations

from mlflow.entities import Experiment
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

from ingest.layout import (
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_NAME_TAG,
    MODEL_TRAINING_KIND,
    TENANT_TAG,
    experiment_artifact_location,
    mlflow_experiment_name,
)


class TenantExperiments:
    """Finds or creates the MLflow experiment of a tenant's experiment name, and caches it.

    An experiment created here is a model-training experiment to MLflow 3's UI (its
    ``mlflow.experimentKind`` tag), which otherwise files it under the GenAI views.

    Args:
        client: the MLflow client experiments are read and created through.
        artifact_root: where new experiments keep artifacts (a folder per tenant).
    """

    def __init__(self, client: MlflowClient, artifact_root: str) -> None:
        self._client = client
        self._artifact_root = artifact_root
        self._experiments: dict[tuple[str, str], Experiment] = {}

    def resolve(self, tenant_id: str, name: str) -> Experiment:
        """The MLflow experiment that holds ``name`` of ``tenant_id``, created if missing
        (by this worker or, in a race, by another one)."""
        key = (tenant_id, name)
        experiment = self._experiments.get(key)
        if experiment is None:
            experiment = self._experiments[key] = self._find_or_create(tenant_id, name)
        return experiment

    def _find_or_create(self, tenant_id: str, name: str) -> Experiment:
        full_name = mlflow_experiment_name(tenant_id, name)
        experiment = self._client.get_experiment_by_name(full_name)
        if experiment is not None:
            return experiment
        try:
            experiment_id = self._client.create_experiment(
                full_name,
                artifact_location=experiment_artifact_location(self._artifact_root, tenant_id),
                tags={
                    TENANT_TAG: tenant_id,
                    EXPERIMENT_NAME_TAG: name,
                    EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND,
                },
            )
        except MlflowException as exc:
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            raced = self._client.get_experiment_by_name(full_name)  # another worker's
            if raced is None:
                raise
            return raced
        return self._client.get_experiment(experiment_id)
