"""The producer-run-id -> MLflow-run mapping, and the tenant's experiments.

MLflow picks its own run ids, so each run carries the producer's id in a tag
(``matih.run_id``) and this registry caches the mapping. A run is looked up
before it is created, so a replay or a redelivery never creates a second one.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.entities import RunStatus as MlflowRunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

from consumers.batch import RunWrites
from ingest.errors import InvalidEventError
from ingest.events import RunCreated
from ingest.ids import run_id_time_ms
from ingest.layout import (
    DESCRIPTION_TAG,
    EXPERIMENT_NAME_TAG,
    RUN_ID_TAG,
    TENANT_TAG,
    USER_TAG,
    mlflow_experiment_name,
)
from ingest.reader import RunReader


@dataclass
class RunState:
    """What the sink knows of one MLflow run."""

    mlflow_run_id: str
    start_time: int
    ended: bool


class RunRegistry:
    """Finds or creates the MLflow run of a producer's run, within its tenant.

    Args:
        client: the MLflow client writes go through.
        artifact_root: where new experiments keep artifacts.
    """

    def __init__(self, client: MlflowClient, artifact_root: str) -> None:
        self._client = client
        self._reader = RunReader(client.tracking_uri)
        self._artifact_root = artifact_root
        self._runs: dict[tuple[str, str], RunState] = {}
        self._experiments: dict[tuple[str, str], str] = {}

    def resolve(self, writes: RunWrites) -> RunState:
        """The run ``writes`` go to: cached, found by its tag, or created.

        Raises:
            InvalidEventError: the run does not exist and no event of the batch names
                its experiment, so it cannot be created.
        """
        key = (writes.tenant_id, writes.run_id)
        state = self._runs.get(key)
        if state is None:
            state = self._find(writes) or self._create(writes)
            self._runs[key] = state
        return state

    def forget(self, tenant_id: str, run_id: str) -> None:
        """Drops a cached mapping (after a write found the run gone)."""
        self._runs.pop((tenant_id, run_id), None)

    def _find(self, writes: RunWrites) -> RunState | None:
        run = self._reader.find_run(writes.tenant_id, writes.run_id)
        if run is None:
            return None
        return RunState(
            mlflow_run_id=run.info.run_id,
            start_time=run.info.start_time,
            ended=run.info.status != MlflowRunStatus.to_string(MlflowRunStatus.RUNNING),
        )

    def _create(self, writes: RunWrites) -> RunState:
        if writes.experiment_name is None:
            raise InvalidEventError(
                f"run {writes.run_id} of tenant {writes.tenant_id} does not exist and no event"
                " names its experiment; start the run first"
            )
        experiment_id = self._experiment_id(writes.tenant_id, writes.experiment_name)
        created = writes.created
        start_time = (
            created.start_time
            if created is not None
            else run_id_time_ms(writes.run_id) or _first_event_ms(writes)
        )
        tags = {RUN_ID_TAG: writes.run_id, TENANT_TAG: writes.tenant_id}
        if created is not None:
            tags.update(creation_tags(created))
        run = self._client.create_run(
            experiment_id,
            start_time=start_time,
            tags=tags,
            run_name=created.run_name if created is not None else None,
        )
        return RunState(mlflow_run_id=run.info.run_id, start_time=start_time, ended=False)

    def _experiment_id(self, tenant_id: str, name: str) -> str:
        key = (tenant_id, name)
        cached = self._experiments.get(key)
        if cached is not None:
            return cached
        full_name = mlflow_experiment_name(tenant_id, name)
        experiment = self._client.get_experiment_by_name(full_name)
        if experiment is not None:
            experiment_id: str = experiment.experiment_id
        else:
            try:
                experiment_id = self._client.create_experiment(
                    full_name,
                    artifact_location=f"{self._artifact_root}/{tenant_id}",
                    tags={TENANT_TAG: tenant_id, EXPERIMENT_NAME_TAG: name},
                )
            except MlflowException as exc:
                if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                    raise
                raced = self._client.get_experiment_by_name(full_name)  # another worker's
                if raced is None:
                    raise
                experiment_id = raced.experiment_id
        self._experiments[key] = experiment_id
        return experiment_id


def creation_tags(created: RunCreated) -> dict[str, str]:
    """The MLflow tags that carry a run's name, user, description and own tags."""
    tags = dict(created.tags)
    if created.user_id is not None:
        tags[USER_TAG] = created.user_id
    if created.description is not None:
        tags[DESCRIPTION_TAG] = created.description
    return tags


def _first_event_ms(writes: RunWrites) -> int:
    event, _ = writes.events[0]
    return int(event.occurred_at.timestamp() * 1000)
