"""How MLflow's runs and experiments look through the gateway.

Experiment ids: MLflow's own ids are per store and say nothing to a client, so
an experiment's id is either the UUID the client named it by (the spec's clients
hold experiment ids from elsewhere in MATIH) or, for an experiment named in
words, a UUIDv5 of tenant and name. Both are stable across gateways and restarts
and need no state.
"""

from __future__ import annotations

import uuid

from mlflow.entities import Run

from ingest.api.responses import RunView
from ingest.layout import (
    DESCRIPTION_TAG,
    RUN_ID_TAG,
    USER_TAG,
    experiment_id_of,
    has_ended,
    run_status,
)
from ingest.validation import RESERVED_TAG_PREFIX

_SYSTEM_TAG_PREFIXES = ("mlflow.", RESERVED_TAG_PREFIX)


def name_of_unknown_id(experiment_id: uuid.UUID) -> str:
    """The name an experiment id the tenant has not used yet stands for: itself."""
    return str(experiment_id)


def run_view(run: Run, experiment_name: str, tenant_id: str) -> RunView:
    """A run as the gateway answers it."""
    info, data = run.info, run.data
    end = info.end_time if has_ended(info.status) else None
    return RunView(
        run_id=data.tags.get(RUN_ID_TAG, info.run_id),
        experiment_id=experiment_id_of(tenant_id, experiment_name),
        experiment_name=experiment_name,
        name=info.run_name,
        description=data.tags.get(DESCRIPTION_TAG),
        user_id=data.tags.get(USER_TAG),
        status=run_status(info.status),
        start_time=info.start_time,
        end_time=end,
        duration_seconds=None if end is None else duration_seconds(info.start_time, end),
        params=dict(data.params),
        metrics=dict(data.metrics),
        tags={k: v for k, v in data.tags.items() if not k.startswith(_SYSTEM_TAG_PREFIXES)},
    )


def duration_seconds(start_ms: int, end_ms: int) -> float:
    """Seconds from start to end, to the millisecond; never negative."""
    return max(end_ms - start_ms, 0) / 1000
