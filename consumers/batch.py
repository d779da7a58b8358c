"""Coalescing: a batch of events becomes, per run, the fewest writes MLflow allows.

Events are grouped by run in arrival order. Metric points are kept (exact
duplicates once); params keep their first value, and a later different value for
the same key is rejected, as MLflow would reject it; tags keep their last value;
a run ends once, with the first end seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from ingest.events import (
    ArtifactLogged,
    Event,
    EventEnvelope,
    MetricRow,
    MetricsEvent,
    ParamsLogged,
    RunCreated,
    RunEnded,
    TagsSet,
)
from ingest.ids import run_id_time_ms
from ingest.layout import (
    DESCRIPTION_TAG,
    RUN_ID_TAG,
    RUN_NAME_TAG,
    TENANT_TAG,
    USER_TAG,
    artifact_tag,
)
from ingest.validation import (
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAGS_PER_BATCH,
)


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where an event was read from."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Rejection:
    """An event, or part of one, that can never be written, and why."""

    reason: str
    event: EventEnvelope | None = None
    source: RecordRef | None = None


@dataclass
class RunWrites:
    """Everything one batch writes to one run."""

    tenant_id: str
    run_id: str
    experiment_name: str | None = None
    created: RunCreated | None = None
    metrics: list[MetricRow] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    ended: RunEnded | None = None
    sources: dict[str, tuple[EventEnvelope, RecordRef | None]] = field(default_factory=dict)
    """Per param key, the event that carried it (to reject just that event)."""
    rejections: list[Rejection] = field(default_factory=list)
    events: list[tuple[Event, RecordRef | None]] = field(default_factory=list)
    _seen: set[MetricRow] = field(default_factory=set)

    def add(self, event: Event, source: RecordRef | None) -> None:
        """Folds one event of this run into the writes."""
        self.events.append((event, source))
        if self.experiment_name is None and event.experiment_name is not None:
            self.experiment_name = event.experiment_name
        if isinstance(event, MetricsEvent):
            seen = self._seen
            for row in event.rows():
                if row not in seen:
                    seen.add(row)
                    self.metrics.append(row)
        elif isinstance(event, ParamsLogged):
            self._add_params(event, source)
        elif isinstance(event, TagsSet):
            self.tags.update(event.tags)
        elif isinstance(event, RunCreated):
            self.created = self.created or event
        elif isinstance(event, RunEnded):
            self.ended = self.ended or event
        elif isinstance(event, ArtifactLogged):
            # The bytes are in the artifact store already; the run records their claim check.
            key, value = artifact_tag(event.path, event.size, event.sha256)
            self.tags[key] = value

    def reject_all(self, reason: str) -> list[Rejection]:
        """Every event of this run in the batch, rejected for ``reason``."""
        return [Rejection(reason, event, source) for event, source in self.events]

    def start_time(self) -> int:
        """When the run started: its creation event's time, else the time its UUIDv7 id
        carries, else the time of its first event in this batch (Unix milliseconds)."""
        if self.created is not None:
            return self.created.start_time
        first, _ = self.events[0]
        return run_id_time_ms(self.run_id) or int(first.occurred_at.timestamp() * 1000)

    def run_tags(self) -> dict[str, str]:
        """The tags to write: the creation's (name, user, description, own tags) under the
        batch's own, so that a run created by its metrics gets them when its creation
        arrives, and a redelivered creation writes the same values again; then the
        worker's mapping tags (producer run id, tenant)."""
        tags = dict(self.tags)
        if self.created is not None:
            tags = {**creation_tags(self.created), **tags}
            if self.created.run_name is not None:
                tags[RUN_NAME_TAG] = self.created.run_name
        if tags:
            # The worker's own mapping tags last: no producer's tag can take their place
            # (the contract refuses ``matih.`` keys; this holds should one get through).
            tags |= {RUN_ID_TAG: self.run_id, TENANT_TAG: self.tenant_id}
        return tags

    def chunks(
        self,
    ) -> list[tuple[list[MetricRow], list[tuple[str, str]], list[tuple[str, str]]]]:
        """The writes in ``log_batch``-sized calls, as MLflow's store takes them: at most
        100 params, 100 tags and 1000 entities in all per call, no param key twice."""
        params = _split(list(self.params.items()), MAX_PARAMS_PER_BATCH)
        tags = _split(list(self.tags.items()), MAX_TAGS_PER_BATCH)
        calls: list[tuple[list[MetricRow], list[tuple[str, str]], list[tuple[str, str]]]] = []
        start = 0
        nothing: list[tuple[str, str]] = []
        for p, t in zip_longest(params, tags, fillvalue=nothing):
            room = MAX_ENTITIES_PER_BATCH - len(p) - len(t)
            calls.append((self.metrics[start : start + room], p, t))
            start += room
        calls += [(m, [], []) for m in _split(self.metrics[start:], MAX_METRICS_PER_BATCH)]
        return [call for call in calls if any(call)]

    def _add_params(self, event: ParamsLogged, source: RecordRef | None) -> None:
        for key, value in event.params.items():
            first = self.params.get(key)
            if first is None:
                self.params[key] = value
                self.sources[key] = (event, source)
            elif first != value:
                self.rejections.append(Rejection(param_conflict(key, first, value), event, source))


def param_conflict(key: str, first: str, value: str) -> str:
    """Why a param cannot take ``value``: MLflow params are write-once."""
    return (
        f"param {key!r} was already logged with value {first!r}; params are write-once,"
        f" so the value {value!r} cannot be written"
    )


def creation_tags(created: RunCreated) -> dict[str, str]:
    """The MLflow tags that carry a run's user, description and own tags."""
    tags = dict(created.tags)
    if created.user_id is not None:
        tags[USER_TAG] = created.user_id
    if created.description is not None:
        tags[DESCRIPTION_TAG] = created.description
    return tags


def coalesce(events: list[tuple[Event, RecordRef | None]]) -> list[RunWrites]:
    """Groups events by (tenant, run), in the order each run first appears."""
    runs: dict[tuple[str, str], RunWrites] = {}
    for event, source in events:
        key = (event.tenant_id, event.run_id)
        writes = runs.get(key)
        if writes is None:
            writes = runs[key] = RunWrites(event.tenant_id, event.run_id)
        writes.add(event, source)
    return list(runs.values())


def _split(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
