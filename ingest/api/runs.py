"""``/api/v1/experiments/runs``: the spec's run endpoints.

Writes answer once Kafka acknowledged them (201 for a new run, 202 for log calls)
with a consistency token; reads come from MLflow and accept ``?after=<token>``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, status

from ingest.api.auth import Tenant
from ingest.api.deps import Gateway
from ingest.api.errors import ERROR_RESPONSES, ApiError, ErrorBody
from ingest.api.responses import (
    Accepted,
    ArtifactView,
    BatchAccepted,
    MetricPointView,
    RunCreatedView,
    RunEndedView,
    RunPage,
    RunView,
)
from ingest.api.schemas import BatchLog, MetricsLog, ParamsLog, RunCreate, example_of
from ingest.events import ExperimentName, RunStatus
from ingest.tracking.reader import MAX_SEARCH_RESULTS
from ingest.validation import check_key

MAX_PAGE = 1000

router = APIRouter(prefix="/api/v1/experiments/runs", tags=["runs"], responses=ERROR_RESPONSES)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "The tenant has no such run."}
}
_READ: dict[int | str, dict[str, Any]] = {
    504: {"model": ErrorBody, "description": "The workers have not written up to ?after= yet."}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "The run has ended already."}
}

RunId = Annotated[str, Path(description="The run's id (32 hex digits).")]
After = Annotated[
    str | None,
    Query(
        description="A consistency token from a write: wait until the workers wrote it.",
        examples=["matih.runs.events:3:1042"],
    ),
]


def _body(model: type[Any]) -> Any:
    return Body(
        openapi_examples={"spec": {"summary": "The spec's example", "value": example_of(model)}}
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_run(
    body: Annotated[RunCreate, _body(RunCreate)], tenant: Tenant, gateway: Gateway
) -> RunCreatedView:
    """Start a run (status ``running``), in an experiment given by id or name."""
    return await gateway.create_run(tenant, body)


@router.get("", responses=_READ)
async def list_runs(
    *,
    tenant: Tenant,
    gateway: Gateway,
    experiment_id: Annotated[uuid.UUID | None, Query()] = None,
    experiment_name: Annotated[ExperimentName | None, Query()] = None,
    status: Annotated[RunStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SEARCH_RESULTS - MAX_PAGE - 1)] = 0,
    after: After = None,
) -> RunPage:
    """List the tenant's runs, newest first, optionally of one experiment and status."""
    if experiment_id is not None and experiment_name is not None:
        raise ApiError.invalid(
            "query.experiment_id", "give experiment_id or experiment_name, not both"
        )
    await gateway.wait_for(after)
    name = experiment_name
    if experiment_id is not None:
        name = await gateway.catalog.experiment_name(tenant, experiment_id)
    runs, has_more = await gateway.catalog.list_runs(tenant, name, status, limit, offset)
    return RunPage(runs=runs, limit=limit, offset=offset, has_more=has_more)


@router.get("/{run_id}", responses={**_NOT_FOUND, **_READ})
async def get_run(run_id: RunId, tenant: Tenant, gateway: Gateway, after: After = None) -> RunView:
    """A run with its params, latest metric values and tags."""
    await gateway.wait_for(after)
    run = await gateway.catalog.get_run(tenant, run_id)
    if run is None:
        raise ApiError.not_found(f"run {run_id!r}")
    return run


@router.post("/{run_id}/log-metrics", status_code=status.HTTP_202_ACCEPTED, responses=_NOT_FOUND)
async def log_metrics(
    run_id: RunId, body: Annotated[MetricsLog, _body(MetricsLog)], tenant: Tenant, gateway: Gateway
) -> Accepted:
    """Log metric values at one step (and time, Unix ms; now if omitted)."""
    return await gateway.log_metrics(tenant, run_id, body)


@router.post("/{run_id}/log-params", status_code=status.HTTP_202_ACCEPTED, responses=_NOT_FOUND)
async def log_params(
    run_id: RunId, body: Annotated[ParamsLog, _body(ParamsLog)], tenant: Tenant, gateway: Gateway
) -> Accepted:
    """Log parameters; values are stored as strings. A param keeps its first value."""
    return await gateway.log_params(tenant, run_id, body)


@router.post("/{run_id}/log-batch", status_code=status.HTTP_202_ACCEPTED, responses=_NOT_FOUND)
async def log_batch(
    run_id: RunId, body: Annotated[BatchLog, _body(BatchLog)], tenant: Tenant, gateway: Gateway
) -> BatchAccepted:
    """Log metrics, params and tags in one request."""
    return await gateway.log_batch(tenant, run_id, body)


@router.post("/{run_id}/end", responses={**_NOT_FOUND, **_CONFLICT})
async def end_run(
    run_id: RunId,
    tenant: Tenant,
    gateway: Gateway,
    status: Annotated[Literal["finished", "failed", "killed"], Query()] = "finished",
) -> RunEndedView:
    """End a run; the answer gives its duration in seconds."""
    return await gateway.end_run(tenant, run_id, RunStatus(status))


@router.get("/{run_id}/metrics/{key:path}/history", responses={**_NOT_FOUND, **_READ})
async def metric_history(
    run_id: RunId,
    key: Annotated[str, Path(description="The metric key.")],
    tenant: Tenant,
    gateway: Gateway,
    after: After = None,
) -> list[MetricPointView]:
    """Every logged value of one metric, ordered by step then time."""
    try:
        check_key(key, "metric key")
    except ValueError as exc:
        raise ApiError.invalid("path.key", str(exc)) from None
    await gateway.wait_for(after)
    points = await gateway.catalog.metric_history(tenant, run_id, key)
    if points is None:
        raise ApiError.not_found(f"run {run_id!r}")
    return points


@router.get("/{run_id}/artifacts", responses={**_NOT_FOUND, **_READ})
async def artifacts(
    run_id: RunId, tenant: Tenant, gateway: Gateway, after: After = None
) -> list[ArtifactView]:
    """The files stored with a run (by the SDK's or the MLflow plugin's ``log_artifact``),
    with size and SHA-256, ordered by path. The bytes are in the run's MLflow artifact
    location, never in Kafka."""
    await gateway.wait_for(after)
    found = await gateway.catalog.artifacts(tenant, run_id)
    if found is None:
        raise ApiError.not_found(f"run {run_id!r}")
    return found
