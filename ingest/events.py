"""The run events that producers publish and consumers write to MLflow.

Every event is a frozen pydantic model sharing one envelope (event id, schema
version, tenant, run, time, kind). ``Event`` is the union of all kinds, told apart
by ``kind``; ``ingest.codec`` turns them into Kafka records and back.

Metric points come in two forms: ``MetricsLogged`` (schema version 1, an object per
point, as the REST gateway sends them) and ``MetricsColumns`` (schema version 2, the
SDK's compact form: each key once, then one column each of key indexes, values, steps
and timestamps). Both carry the same points and write the same rows (``MetricRow``).
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, NamedTuple, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ingest.ids import is_run_id, new_event_id
from ingest.validation import (
    INT64_MAX,
    INT64_MIN,
    MAX_DESCRIPTION_LENGTH,
    MAX_EXPERIMENT_NAME_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_NAME_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    check_artifact_path,
    check_key,
    check_tag_key,
    check_tenant_id,
    check_text,
)


class EventKind(StrEnum):
    """What an event records."""

    RUN_CREATED = "run.created"
    METRICS_LOGGED = "metrics.logged"
    METRICS_COLUMNS = "metrics.columns"
    PARAMS_LOGGED = "params.logged"
    TAGS_SET = "tags.set"
    RUN_ENDED = "run.ended"
    ARTIFACT_LOGGED = "artifact.logged"


class RunStatus(StrEnum):
    """The statuses of a run, as the spec names them."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"


MAX_MILLIS = 2**63 - 1
"""The latest time MLflow's stores can hold (a 64-bit integer of milliseconds)."""

TERMINAL_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED})


def _check_run_id(value: str) -> str:
    if not is_run_id(value):
        raise ValueError(f"run id {value!r} must be 32 lowercase hex digits (a UUID's hex form)")
    return value


def _check_end_status(value: RunStatus) -> RunStatus:
    if value not in TERMINAL_STATUSES:
        raise ValueError(
            f"status {value.value!r} does not end a run; use finished, failed or killed"
        )
    return value


def _check_params(values: dict[str, str]) -> dict[str, str]:
    for key, value in values.items():
        check_key(key, "param key")
        check_text(value, MAX_PARAM_VALUE_LENGTH, f"param {key!r} value")
    return values


def _check_tags(values: dict[str, str]) -> dict[str, str]:
    for key, value in values.items():
        check_tag_key(key)
        check_text(value, MAX_TAG_VALUE_LENGTH, f"tag {key!r} value")
    return values


TenantId = Annotated[
    str,
    AfterValidator(check_tenant_id),
    Field(description="The tenant that owns the run.", examples=["acme-corp"]),
]
RunId = Annotated[
    str,
    AfterValidator(_check_run_id),
    Field(
        description="The run's id, chosen by the producer (a UUIDv7, hex).",
        examples=["0192f0c1a2b37c4d8e9fa0b1c2d3e4f5"],
    ),
]
# A worker sees the same few keys in every event: each is checked once, then remembered.
Key = Annotated[str, AfterValidator(functools.lru_cache(maxsize=4096)(check_key))]
Params = Annotated[
    dict[str, str],
    AfterValidator(_check_params),
    Field(description="Parameter values, as strings.", examples=[{"learning_rate": "0.01"}]),
]
Tags = Annotated[
    dict[str, str],
    AfterValidator(_check_tags),
    Field(description="Tag values, as strings.", examples=[{"model_type": "xgboost"}]),
]
ExperimentName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_EXPERIMENT_NAME_LENGTH,
        description="The experiment, by name, within the tenant.",
        examples=["fraud-detection-v3"],
    ),
]


def _now() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    # defer_build: each model's validator is built when first used, not at import (a
    # trainer's ``import producers`` would pay for every kind of event up front).
    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_inf_nan="constants", defer_build=True
    )


class EventEnvelope(_Model):
    """The fields every event carries."""

    event_id: uuid.UUID = Field(
        default_factory=new_event_id,
        description="Unique per event; a redelivered event keeps its id.",
    )
    schema_version: Literal[1] = Field(default=1, description="Version of this contract.")
    tenant_id: TenantId
    run_id: RunId
    experiment_name: ExperimentName | None = Field(
        default=None,
        description="The run's experiment, so that any event can create the run it names.",
    )
    occurred_at: AwareDatetime = Field(
        default_factory=_now, description="When the producer recorded the event (timezone-aware)."
    )
    kind: EventKind = Field(description="What the event records; each kind narrows it.")


class RunCreated(EventEnvelope):
    """A run was started."""

    kind: Literal[EventKind.RUN_CREATED] = EventKind.RUN_CREATED
    experiment_name: ExperimentName
    run_name: str | None = Field(
        default=None, max_length=MAX_NAME_LENGTH, examples=["xgboost-lr-0.01-depth-6"]
    )
    description: str | None = Field(
        default=None,
        max_length=MAX_DESCRIPTION_LENGTH,
        examples=["XGBoost with learning rate 0.01 and max depth 6"],
    )
    tags: Tags = Field(default_factory=dict)
    user_id: str | None = Field(
        default=None, max_length=MAX_NAME_LENGTH, examples=["alice@acme.com"]
    )
    start_time: int = Field(
        ge=0, le=MAX_MILLIS, description="Start time, Unix milliseconds.", examples=[1707723600000]
    )


class MetricPoint(_Model):
    """One value of one metric at one step."""

    key: Key = Field(examples=["val_loss"])
    value: float = Field(examples=[0.389])
    step: int = Field(default=0, ge=-(2**63), le=2**63 - 1, examples=[15])
    timestamp: int = Field(
        ge=0,
        le=MAX_MILLIS,
        description="Unix milliseconds, from the client.",
        examples=[1707723600000],
    )


class MetricRow(NamedTuple):
    """One metric point as the workers write it, whichever event carried it."""

    key: str
    value: float
    step: int
    timestamp: int


class MetricsLogged(EventEnvelope):
    """Metric points were logged; each point carries its own step and client timestamp."""

    kind: Literal[EventKind.METRICS_LOGGED] = EventKind.METRICS_LOGGED
    metrics: tuple[MetricPoint, ...] = Field(min_length=1, max_length=MAX_METRICS_PER_BATCH)

    @property
    def point_count(self) -> int:
        """How many points the event carries."""
        return len(self.metrics)

    def rows(self) -> list[MetricRow]:
        """The event's points, in order."""
        return [MetricRow(p.key, p.value, p.step, p.timestamp) for p in self.metrics]


Step = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Millis = Annotated[int, Field(ge=0, le=MAX_MILLIS)]


class MetricsColumns(EventEnvelope):
    """Metric points were logged, in columns: the same points as ``MetricsLogged``
    (schema version 1) with each key written once, about a third of the bytes.

    Point ``i`` is ``keys[key_index[i]]`` = ``values[i]`` at ``steps[i]``, logged at
    ``timestamps[i]``; the four columns have one entry per point.
    """

    schema_version: Literal[2] = Field(  # type: ignore[assignment]  # the contract's version 2
        default=2, description="Version of this contract."
    )
    kind: Literal[EventKind.METRICS_COLUMNS] = EventKind.METRICS_COLUMNS
    keys: tuple[Key, ...] = Field(
        min_length=1,
        max_length=MAX_METRICS_PER_BATCH,
        description="The metric keys the points name, each once.",
        examples=[["train_loss", "val_loss"]],
    )
    key_index: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        min_length=1,
        max_length=MAX_METRICS_PER_BATCH,
        description="Per point, the position of its key in ``keys``.",
        examples=[[0, 1, 0]],
    )
    values: tuple[float, ...] = Field(
        min_length=1,
        max_length=MAX_METRICS_PER_BATCH,
        description="Per point, its value (NaN and Infinity as JSON constants).",
        examples=[[0.52, 0.61, 0.48]],
    )
    steps: tuple[Step, ...] = Field(
        min_length=1,
        max_length=MAX_METRICS_PER_BATCH,
        description="Per point, its training step.",
        examples=[[14, 14, 15]],
    )
    timestamps: tuple[Millis, ...] = Field(
        min_length=1,
        max_length=MAX_METRICS_PER_BATCH,
        description="Per point, Unix milliseconds, from the client.",
        examples=[[1707723600000, 1707723600000, 1707723600950]],
    )

    @model_validator(mode="after")
    def _columns_line_up(self) -> Self:
        count = len(self.key_index)
        for name in ("values", "steps", "timestamps"):
            if len(getattr(self, name)) != count:
                raise ValueError(
                    f"{name} has {len(getattr(self, name))} entries; every column needs one"
                    f" per point, as key_index has {count}"
                )
        if len(set(self.keys)) != len(self.keys):
            twice = next(key for key in self.keys if self.keys.count(key) > 1)
            raise ValueError(f"keys names {twice!r} twice; each key is written once")
        if max(self.key_index) >= len(self.keys):
            raise ValueError(
                f"key_index {max(self.key_index)} names no key; keys has {len(self.keys)}"
            )
        return self

    @property
    def point_count(self) -> int:
        """How many points the event carries."""
        return len(self.key_index)

    def rows(self) -> list[MetricRow]:
        """The event's points, in order (tuples zipped from the columns, no model each)."""
        keys = self.keys
        return list(
            map(
                MetricRow._make,
                zip(
                    [keys[i] for i in self.key_index],
                    self.values,
                    self.steps,
                    self.timestamps,
                    strict=True,
                ),
            )
        )


MetricsEvent = MetricsLogged | MetricsColumns
"""Either form of metric points."""


class ParamsLogged(EventEnvelope):
    """Parameters were logged (write-once: a key keeps its first value)."""

    kind: Literal[EventKind.PARAMS_LOGGED] = EventKind.PARAMS_LOGGED
    params: Params


class TagsSet(EventEnvelope):
    """Tags were set (a later value replaces an earlier one)."""

    kind: Literal[EventKind.TAGS_SET] = EventKind.TAGS_SET
    tags: Tags


class RunEnded(EventEnvelope):
    """A run ended with a terminal status."""

    kind: Literal[EventKind.RUN_ENDED] = EventKind.RUN_ENDED
    status: Annotated[RunStatus, AfterValidator(_check_end_status)] = Field(examples=["finished"])
    end_time: int = Field(
        ge=0, le=MAX_MILLIS, description="End time, Unix milliseconds.", examples=[1707723942500]
    )


class ArtifactLogged(EventEnvelope):
    """A file was stored in the run's artifact location (a claim check: the bytes never
    travel through Kafka, only where they are and how to verify them)."""

    kind: Literal[EventKind.ARTIFACT_LOGGED] = EventKind.ARTIFACT_LOGGED
    path: Annotated[str, AfterValidator(check_artifact_path)] = Field(
        description="The file's path under the run's artifact root, '/'-separated.",
        examples=["model/weights.bin"],
    )
    size: int = Field(ge=0, description="The file's size in bytes.", examples=[1048576])
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the file's bytes, lowercase hex.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )


Event = Annotated[
    RunCreated
    | MetricsLogged
    | MetricsColumns
    | ParamsLogged
    | TagsSet
    | RunEnded
    | ArtifactLogged,
    Field(discriminator="kind"),
]
