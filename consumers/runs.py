"""The producer-run-id -> MLflow-run mapping of the store-API write path.

MLflow's store API picks its own run ids, so each run carries the producer's id in a
tag (``matih.run_id``) and this registry caches the mapping. A run is looked up
before it is created, so a replay or a redelivery never creates a second one.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from consumers.batch import RunWrites, creation_tags
from consumers.experiments import TenantExperiments
from ingest.errors import InvalidEventError
from ingest.layout import RUN_ID_TAG, TENANT_TAG, has_ended
from ingest.tracking.reader import RunReader


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
        experiments: the tenants' experiments.
    """

    def __init__(self, client: MlflowClient, experiments: TenantExperiments) -> None:
        self._client = client
        self._reader = RunReader(client.tracking_uri)
        self._experiments = experiments
        self._runs: dict[tuple[str, str], RunState] = {}

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
            ended=has_ended(run.info.status),
        )

    def _create(self, writes: RunWrites) -> RunState:
        experiment = self._experiments.resolve(writes.tenant_id, experiment_name(writes))
        created = writes.created
        start_time = writes.start_time()
        # The worker's own mapping tags last: no producer's tag can take their place.
        tags = creation_tags(created) if created is not None else {}
        tags.update({RUN_ID_TAG: writes.run_id, TENANT_TAG: writes.tenant_id})
        run = self._client.create_run(
            experiment.experiment_id,
            start_time=start_time,
            tags=tags,
            run_name=created.run_name if created is not None else None,
        )
        return RunState(mlflow_run_id=run.info.run_id, start_time=start_time, ended=False)


def experiment_name(writes: RunWrites) -> str:
    """The experiment a run that does not exist yet is created in.

    Raises:
        InvalidEventError: no event of the batch names it.
    """
    if writes.experiment_name is None:
        raise InvalidEventError(
            f"run {writes.run_id} of tenant {writes.tenant_id} does not exist and no event"
            " names its experiment; start the run first"
        )
    return writes.experiment_name
