"""``/api/v1/experiments``: the tenant's experiments, by id or by name."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from ingest.api.auth import Tenant
from ingest.api.deps import Gateway
from ingest.api.errors import ERROR_RESPONSES
from ingest.api.responses import ExperimentList, ExperimentView
from ingest.api.schemas import ExperimentCreate

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"], responses=ERROR_RESPONSES)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ExperimentView, "description": "The tenant has this experiment."}},
)
async def create_experiment(
    body: ExperimentCreate, tenant: Tenant, gateway: Gateway, response: Response
) -> ExperimentView:
    """Name an experiment and get its id (201; 200 if the tenant has it already).

    Nothing is written: the experiment is created in MLflow with its first run.
    Until then only this gateway lists it.
    """
    for known in await gateway.catalog.experiments(tenant):
        if known.name == body.name:
            response.status_code = status.HTTP_200_OK
            return known
    return gateway.catalog.declare(tenant, body.name)


@router.get("")
async def list_experiments(tenant: Tenant, gateway: Gateway) -> ExperimentList:
    """The tenant's experiments, oldest first."""
    return ExperimentList(experiments=await gateway.catalog.experiments(tenant))
