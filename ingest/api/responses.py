"""Response bodies of the REST gateway.

Metric values may be NaN (MLflow stores it; JSON has no NaN): responses carry it,
and the infinities, as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ingest.events import RunStatus

MetricValueOut = Annotated[
    float,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
            ]
        }
    ),
]
"""A metric value in a response; non-finite values are the strings NaN, Infinity, -Infinity."""


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")


class ExperimentView(_Response):
    """An experiment of the tenant."""

    experiment_id: str = Field(
        description="Stable: a UUID the client chose, or derived from tenant and name.",
        examples=["4a7c5d3e-9b1f-5c2d-8e6f-0a1b2c3d4e5f"],
    )
    name: str = Field(examples=["fraud-detection-v3"])
    creation_time: int | None = Field(
        default=None, description="Unix ms; null until its first run is written."
    )


class ExperimentList(_Response):
    """The tenant's experiments, oldest first."""

    experiments: list[ExperimentView]


class RunCreatedView(_Response):
    """A run that was started."""

    run_id: str = Field(examples=["0192f0c1a2b37c4d8e9fa0b1c2d3e4f5"])
    experiment_id: str
    experiment_name: str
    name: str | None
    status: Literal[RunStatus.RUNNING] = RunStatus.RUNNING
    start_time: int = Field(description="Unix milliseconds.", examples=[1707723600000])
    consistency_token: str = Field(description="Pass as ?after= to read this write.")


class Accepted(_Response):
    """A write Kafka acknowledged; the workers write it to MLflow shortly."""

    message: Literal["Accepted"] = "Accepted"
    run_id: str
    event_id: uuid.UUID
    consistency_token: str = Field(description="Pass as ?after= to read this write.")


class BatchAccepted(_Response):
    """A batch Kafka acknowledged: one event per kind of item."""

    message: Literal["Accepted"] = "Accepted"
    run_id: str
    event_ids: list[uuid.UUID]
    consistency_token: str = Field(description="Pass as ?after= to read this write.")


class RunEndedView(_Response):
    """The spec's answer to ending a run."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "Run ended",
                    "run_id": "0192f0c1a2b37c4d8e9fa0b1c2d3e4f5",
                    "status": "finished",
                    "duration_seconds": 342.5,
                    "consistency_token": "matih.runs.events:3:1042",
                }
            ]
        }
    )

    message: Literal["Run ended"] = "Run ended"
    run_id: str
    status: RunStatus
    duration_seconds: float
    consistency_token: str = Field(description="Pass as ?after= to read this write.")


class RunView(_Response):
    """A run as MLflow holds it."""

    run_id: str
    experiment_id: str
    experiment_name: str
    name: str | None
    description: str | None
    user_id: str | None
    status: RunStatus
    start_time: int = Field(description="Unix milliseconds.")
    end_time: int | None = Field(description="Unix milliseconds; null while running.")
    duration_seconds: float | None
    params: dict[str, str]
    metrics: dict[str, MetricValueOut] = Field(description="The latest value of each metric.")
    tags: dict[str, str]


class RunPage(_Response):
    """A page of runs, newest first."""

    runs: list[RunView]
    limit: int
    offset: int
    has_more: bool = Field(description="Whether a next page (offset + limit) holds runs.")


class ArtifactView(_Response):
    """A file stored with a run by claim check."""

    path: str = Field(
        description="Path under the run's artifact root.", examples=["model/weights.bin"]
    )
    size: int = Field(description="Size in bytes.", examples=[1048576])
    sha256: str = Field(
        description="SHA-256 of the bytes, lowercase hex.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )


class MetricPointView(_Response):
    """One point of a metric's history, in the spec's shape."""

    key: str
    value: MetricValueOut
    timestamp: int
    step: int
