"""Request bodies of the REST gateway, with the spec's examples.

Input is checked here against MLflow's rules (``ingest.validation``), so that a
bad key or value is a 422 that names it, never an event the worker must reject.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from ingest.events import ExperimentName, Key
from ingest.validation import (
    INT64_MAX,
    INT64_MIN,
    MAX_DESCRIPTION_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_NAME_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS_PER_BATCH,
    check_metric_value,
    check_tag_key,
)


def _integer(value: object) -> object:
    """Accepts integers and integral floats (``15.0``); never strings or booleans."""
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"must be an integer, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _scalar_text(value: object) -> object:
    """Stringifies a number or boolean, as MLflow stores params and tags."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise ValueError(f"must be a string, number or boolean, got {type(value).__name__}")


def _scalar_schema(max_length: int) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": max_length},
                {"type": "number"},
                {"type": "boolean"},
            ]
        }
    )


MetricValue = Annotated[float, BeforeValidator(lambda v: check_metric_value(v, "metric value"))]
Step = Annotated[int, BeforeValidator(_integer), Field(ge=INT64_MIN, le=INT64_MAX)]
TimestampMs = Annotated[
    int,
    BeforeValidator(_integer),
    Field(ge=0, le=INT64_MAX, description="Unix milliseconds; the gateway's clock if omitted."),
]
ParamValue = Annotated[
    str,
    BeforeValidator(_scalar_text),
    Field(max_length=MAX_PARAM_VALUE_LENGTH),
    _scalar_schema(MAX_PARAM_VALUE_LENGTH),
]
TagValue = Annotated[
    str,
    BeforeValidator(_scalar_text),
    Field(max_length=MAX_TAG_VALUE_LENGTH),
    _scalar_schema(MAX_TAG_VALUE_LENGTH),
]
TagKey = Annotated[str, AfterValidator(check_tag_key)]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExperimentCreate(_Request):
    """Names an experiment within the tenant."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "fraud-detection-v3"}]})

    name: ExperimentName


class RunCreate(_Request):
    """Starts a run in an experiment named by id (as the spec does) or by name."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "experiment_id": "550e8400-e29b-41d4-a716-446655440000",
                    "name": "xgboost-lr-0.01-depth-6",
                    "description": "XGBoost with learning rate 0.01 and max depth 6",
                    "tags": {"model_type": "xgboost", "dataset_version": "v2.1"},
                }
            ]
        }
    )

    experiment_id: uuid.UUID | None = Field(
        default=None,
        description="An experiment id from GET /api/v1/experiments, or any UUID of the"
        " client's: an id the tenant has not used yet names a new experiment.",
    )
    experiment_name: ExperimentName | None = Field(
        default=None, description="The experiment by name, instead of experiment_id."
    )
    name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=MAX_TAGS_PER_BATCH)
    user_id: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)

    @model_validator(mode="after")
    def _one_experiment(self) -> Self:
        if (self.experiment_id is None) == (self.experiment_name is None):
            raise ValueError("give exactly one of experiment_id and experiment_name")
        return self


class MetricsLog(_Request):
    """Metric values at one step."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "metrics": {
                        "train_loss": 0.342,
                        "val_loss": 0.389,
                        "val_accuracy": 0.876,
                        "val_f1": 0.851,
                    },
                    "step": 15,
                    "timestamp": 1707723600000,
                }
            ]
        }
    )

    metrics: dict[Key, MetricValue] = Field(min_length=1, max_length=MAX_METRICS_PER_BATCH)
    step: Step = 0
    timestamp: TimestampMs | None = None


class ParamsLog(_Request):
    """Parameters; numbers and booleans are stored as strings."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "params": {
                        "learning_rate": "0.01",
                        "max_depth": "6",
                        "n_estimators": "200",
                        "subsample": "0.8",
                        "colsample_bytree": "0.7",
                    }
                }
            ]
        }
    )

    params: dict[Key, ParamValue] = Field(min_length=1, max_length=MAX_PARAMS_PER_BATCH)


class BatchMetric(_Request):
    """One metric value."""

    key: Key
    value: MetricValue
    step: Step = 0
    timestamp: TimestampMs | None = None


class BatchParam(_Request):
    """One parameter."""

    key: Key
    value: ParamValue


class BatchTag(_Request):
    """One tag."""

    key: TagKey
    value: TagValue


class BatchLog(_Request):
    """Metrics, params and tags in one request."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "metrics": [
                        {"key": "loss", "value": 0.342, "step": 1},
                        {"key": "loss", "value": 0.298, "step": 2},
                        {"key": "loss", "value": 0.256, "step": 3},
                    ],
                    "params": [
                        {"key": "optimizer", "value": "adam"},
                        {"key": "batch_size", "value": "64"},
                    ],
                    "tags": [
                        {"key": "run_type", "value": "hyperparameter_search"},
                        {"key": "gpu_model", "value": "A100"},
                    ],
                }
            ]
        }
    )

    metrics: list[BatchMetric] = Field(default_factory=list, max_length=MAX_METRICS_PER_BATCH)
    params: list[BatchParam] = Field(default_factory=list, max_length=MAX_PARAMS_PER_BATCH)
    tags: list[BatchTag] = Field(default_factory=list, max_length=MAX_TAGS_PER_BATCH)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not (self.metrics or self.params or self.tags):
            raise ValueError("give at least one metric, param or tag")
        seen: dict[str, str] = {}
        for param in self.params:
            if seen.setdefault(param.key, param.value) != param.value:
                raise ValueError(f"param {param.key!r} is given twice with different values")
        return self


def example_of(model: type[BaseModel]) -> dict[str, Any]:
    """The first example a model documents (for the OpenAPI request bodies)."""
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    examples = extra["examples"]
    assert isinstance(examples, list)
    first = examples[0]
    assert isinstance(first, dict)
    return dict(first)
