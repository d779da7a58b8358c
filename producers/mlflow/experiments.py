"""The experiments of one tenant, as the MLflow plugin shows them.

MLflow's clients name experiments by id, but the workers create each experiment with
its first run, so a trainer cannot learn MLflow's id of an experiment it just named.
The plugin's ids are therefore derived, like the gateway's: ``experiment_id_of`` of
tenant and name, the same before and after the workers created the experiment, in
every process; the tenant's ``Default`` experiment keeps MLflow's default id ``"0"``.
Names are the tenant's own (without the ``<tenant>/`` namespace of the store), and the
workers' ``matih.`` tags are left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflow.entities import Experiment, ExperimentTag, LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities import PagedList
from mlflow.utils.search_utils import SearchExperimentsUtils

from ingest.layout import (
    DEFAULT_EXPERIMENT_NAME,
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_NAME_TAG,
    MODEL_TRAINING_KIND,
    experiment_artifact_location,
    experiment_id_of,
    mlflow_experiment_name,
)
from ingest.validation import RESERVED_TAG_PREFIX

if TYPE_CHECKING:
    from ingest.tracking.reader import RunReader

DEFAULT_EXPERIMENT_ID = "0"
"""MLflow's id of the experiment its clients log to when none is set."""


class ExperimentCatalog:
    """Finds a tenant's experiments by the plugin's ids and by name.

    Args:
        reader: reads the store the workers write.
        tenant_id: whose experiments.
        artifact_root: where the workers put the artifacts of experiments they create.
    """

    def __init__(self, reader: RunReader, tenant_id: str, artifact_root: str) -> None:
        self._reader = reader
        self._tenant_id = tenant_id
        self._artifact_root = artifact_root
        self._declared: dict[str, str] = {}
        self._plugin_ids: dict[str, str] = {}
        self.declare(DEFAULT_EXPERIMENT_NAME)

    def declare(self, name: str) -> str:
        """Remembers an experiment that its first run will create; returns its id."""
        experiment_id = self._id_of(name)
        self._declared[experiment_id] = name
        return experiment_id

    def name_of(self, experiment_id: str) -> str:
        """The name of the experiment with the plugin's ``experiment_id``.

        Raises:
            MlflowException: no experiment of the tenant has this id.
        """
        if experiment_id == DEFAULT_EXPERIMENT_ID:
            return DEFAULT_EXPERIMENT_NAME
        name = self._declared.get(experiment_id)
        if name is not None:
            return name
        for experiment in self._stored():
            if experiment.experiment_id == experiment_id:
                self._declared[experiment_id] = experiment.name
                return str(experiment.name)
        raise MlflowException(
            f"No experiment with id {experiment_id!r} in tenant {self._tenant_id}",
            RESOURCE_DOES_NOT_EXIST,
        )

    def get(self, experiment_id: str) -> Experiment:
        """The experiment with the plugin's ``experiment_id``: as stored, or as declared.

        Raises:
            MlflowException: no experiment of the tenant has this id.
        """
        name = self.name_of(experiment_id)
        found = self.by_name(name)
        assert found is not None  # a declared name is always answered
        return found

    def by_name(self, name: str) -> Experiment | None:
        """The experiment named ``name``: as stored, else as declared, else None."""
        full_name = mlflow_experiment_name(self._tenant_id, name)
        for experiment in self._reader.experiments(self._tenant_id):
            if experiment.name == full_name:
                return self.view(experiment)
        experiment_id = self._id_of(name)
        if self._declared.get(experiment_id) != name:
            return None
        return Experiment(
            experiment_id=experiment_id,
            name=name,
            artifact_location=self.artifact_location(name),
            lifecycle_stage=LifecycleStage.ACTIVE,
            tags=[ExperimentTag(EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)],
        )

    def artifact_location(self, name: str) -> str:
        """Where the experiment keeps artifacts: as stored, else where the workers will
        create it."""
        full_name = mlflow_experiment_name(self._tenant_id, name)
        for experiment in self._reader.experiments(self._tenant_id):
            if experiment.name == full_name:
                return str(experiment.artifact_location)
        return experiment_artifact_location(self._artifact_root, self._tenant_id)

    def plugin_id(self, mlflow_experiment_id: str) -> str:
        """The plugin's id of the stored experiment with MLflow's ``mlflow_experiment_id``."""
        known = self._plugin_ids.get(mlflow_experiment_id)
        if known is None:
            for experiment in self._reader.experiments(self._tenant_id):
                self._plugin_ids[experiment.experiment_id] = self.view(experiment).experiment_id
            known = self._plugin_ids.get(mlflow_experiment_id, mlflow_experiment_id)
        return known

    def mlflow_ids(self, experiment_ids: list[str]) -> list[str]:
        """The store's ids of the experiments the plugin's ``experiment_ids`` name (those
        the workers have created)."""
        wanted = {self.name_of(e) for e in experiment_ids}
        return [
            experiment.experiment_id
            for experiment in self._reader.experiments(self._tenant_id)
            if experiment.tags.get(EXPERIMENT_NAME_TAG) in wanted
        ]

    def search(
        self,
        view_type: int,
        max_results: int,
        filter_string: str | None,
        order_by: list[str] | None,
        page_token: str | None,
    ) -> PagedList[Experiment]:
        """The tenant's stored experiments, filtered, ordered and paged as MLflow does."""
        experiments = [
            e
            for e in self._stored()
            if LifecycleStage.matches_view_type(view_type, e.lifecycle_stage)
        ]
        utils = SearchExperimentsUtils
        experiments = utils.filter(experiments, filter_string)  # type: ignore[no-untyped-call]
        experiments = utils.sort(experiments, order_by or [])  # type: ignore[no-untyped-call]
        page, token = utils.paginate(  # type: ignore[no-untyped-call]
            experiments, page_token, max_results
        )
        return PagedList(page, token)

    def view(self, experiment: Experiment) -> Experiment:
        """A stored experiment as the plugin shows it: the plugin's id, the tenant's name."""
        name = experiment.tags.get(EXPERIMENT_NAME_TAG, experiment.name)
        return Experiment(
            experiment_id=self._id_of(name),
            name=name,
            artifact_location=experiment.artifact_location,
            lifecycle_stage=experiment.lifecycle_stage,
            tags=[
                ExperimentTag(key, value)
                for key, value in experiment.tags.items()
                if not key.startswith(RESERVED_TAG_PREFIX)
            ],
            creation_time=experiment.creation_time,
            last_update_time=experiment.last_update_time,
        )

    def _id_of(self, name: str) -> str:
        if name == DEFAULT_EXPERIMENT_NAME:
            return DEFAULT_EXPERIMENT_ID
        return experiment_id_of(self._tenant_id, name)

    def _stored(self) -> list[Experiment]:
        return [self.view(e) for e in self._reader.experiments(self._tenant_id)]
