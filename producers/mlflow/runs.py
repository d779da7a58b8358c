"""Runs as the MLflow plugin shows them: under the producer's run id and the plugin's
experiment id, without the workers' ``matih.`` tags.

On SQL stores MLflow's run id is the producer's already; on the store-API path (an
``http://`` server picks its own ids) the producer's id is read from the run's
``matih.run_id`` tag, so a caller only ever sees, and passes, the producer's id.
"""

from __future__ import annotations

from mlflow.entities import LifecycleStage, Run, RunData, RunInfo, RunStatus, RunTag

from ingest.layout import RUN_ID_TAG
from ingest.validation import RESERVED_TAG_PREFIX


def run_view(run: Run, experiment_id: str, artifact_uri: str | None = None) -> Run:
    """A stored run under the producer's id and the plugin's ``experiment_id`` (and, for a
    run this process still writes, its claim-check ``artifact_uri``)."""
    info, data = run.info, run.data
    return Run(
        RunInfo(
            run_id=data.tags.get(RUN_ID_TAG, info.run_id),
            experiment_id=experiment_id,
            user_id=info.user_id,
            status=info.status,
            start_time=info.start_time,
            end_time=info.end_time,
            lifecycle_stage=info.lifecycle_stage,
            artifact_uri=artifact_uri or info.artifact_uri,
            run_name=info.run_name,
        ),
        _without_own_tags(data),
        run.inputs,
        run.outputs,
    )


def _without_own_tags(data: RunData) -> RunData:
    # Through its proto: RunData gives its latest metrics as Metric objects no other way.
    proto = data.to_proto()
    kept = [tag for tag in proto.tags if not tag.key.startswith(RESERVED_TAG_PREFIX)]
    del proto.tags[:]
    proto.tags.extend(kept)
    return RunData.from_proto(proto)


def new_run(
    *,
    run_id: str,
    experiment_id: str,
    user_id: str,
    start_time: int,
    artifact_uri: str,
    run_name: str,
    tags: dict[str, str],
) -> Run:
    """A run just published, as MLflow's ``create_run`` answers it (before the workers
    wrote it)."""
    return Run(
        RunInfo(
            run_id=run_id,
            experiment_id=experiment_id,
            user_id=user_id,
            status=RunStatus.to_string(RunStatus.RUNNING),
            start_time=start_time,
            end_time=None,
            lifecycle_stage=LifecycleStage.ACTIVE,
            artifact_uri=artifact_uri,
            run_name=run_name,
        ),
        RunData(tags=[RunTag(key, value) for key, value in tags.items()]),
    )
