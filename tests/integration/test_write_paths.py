"""Both write paths of the MLflow sink leave stores that MLflow's own client reads the same.

The sink writes a batch either through MLflow's store API or, on a SQL store whose
schema it knows, straight into MLflow's tables (the bulk path). The bulk path must keep
every rule MLflow keeps, so the same event stream goes through each path into a fresh
store of the same kind, and both stores are read back only through ``MlflowClient``:
``get_run``, the history of every metric key, and ``search_runs`` filtered and ordered
by metrics, params and tags. Any difference fails the test.

The stream holds what a worker meets: redelivered and replayed records, a record
published twice, NaN and infinities, negative and 64-bit steps, a step logged at
several timestamps, param conflicts within a batch and across batches, tag overwrites,
a second end, an end before the start, and runs created by their metrics before their
creation event (one of them never gets one).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from consumers import MlflowSink, RecordRef, Rejection
from ingest.codec import decode, encode
from ingest.events import (
    Event,
    MetricPoint,
    MetricsEvent,
    MetricsLogged,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
    TagsSet,
)
from ingest.ids import new_run_id
from ingest.layout import RUN_ID_TAG, RUN_NAME_TAG
from ingest.settings import MlflowSettings, WritePath
from ingest.tracking.reader import RunReader
from ingest.validation import INT64_MAX, INT64_MIN

pytestmark = pytest.mark.integration

TOPIC = "matih.runs.events"
T0 = 1_707_723_600_000
NAN, INF = math.nan, math.inf
SEARCHES = {
    "every run, oldest first": ("", ["attributes.start_time ASC"]),
    "loss under 0.5, highest first": ("metrics.loss < 0.5", ["metrics.loss DESC"]),
    "lr of 0.01": ("params.lr = '0.01'", []),
    "high priority, by team": ("tags.priority = 'high'", ["tags.team ASC"]),
}
"""Searches run over each tenant's experiments, by name: (filter, order)."""

Record = tuple[Event, RecordRef]
Batch = list[Record]


# The stream


class Topic:
    """The events topic: each tenant's events are appended to its partition, in order."""

    def __init__(self, partitions: dict[str, int]) -> None:
        self._partitions = partitions
        self._ends: Counter[int] = Counter()

    def append(self, *events: Event) -> Batch:
        """Publishes ``events``; returns them as a worker reads them."""
        records = []
        for event in events:
            partition = self._partitions[event.tenant_id]
            records.append(delivered(event, RecordRef(TOPIC, partition, self._ends[partition])))
            self._ends[partition] += 1
        return records


def delivered(event: Event, source: RecordRef) -> Record:
    """An event as a worker reads it: decoded from its record (a NaN is a new float)."""
    return decode(encode(event)), source


def redelivered(records: Batch) -> Batch:
    """The same records read again, as after a commit that did not happen."""
    return [delivered(event, source) for event, source in records]


@dataclass(frozen=True)
class Trainer:
    """Makes the events of one run. Like the SDK, every event names the experiment, so
    whichever arrives first creates the run."""

    tenant_id: str
    experiment_name: str
    start_time: int
    run_id: str

    @classmethod
    def starting_at(cls, tenant_id: str, experiment_name: str, start_time: int) -> Trainer:
        return cls(tenant_id, experiment_name, start_time, new_run_id(start_time))

    def created(self, start_time: int | None = None, **fields: Any) -> RunCreated:
        start = self.start_time if start_time is None else start_time
        return RunCreated(**self._envelope(), start_time=start, **fields)

    def metrics(self, key: str, *points: tuple[int, int, float]) -> MetricsLogged:
        """Points of ``key``, each as (step, timestamp, value)."""
        return MetricsLogged(
            **self._envelope(),
            metrics=tuple(MetricPoint(key=key, step=s, timestamp=t, value=v) for s, t, v in points),
        )

    def params(self, **params: str) -> ParamsLogged:
        return ParamsLogged(**self._envelope(), params=params)

    def tags(self, **tags: str) -> TagsSet:
        return TagsSet(**self._envelope(), tags=tags)

    def ended(self, status: RunStatus, end_time: int) -> RunEnded:
        return RunEnded(**self._envelope(), status=status, end_time=end_time)

    def _envelope(self) -> dict[str, str]:
        return {
            "tenant_id": self.tenant_id,
            "run_id": self.run_id,
            "experiment_name": self.experiment_name,
        }


@dataclass(frozen=True)
class Stream:
    """Batches as a worker flushes them, and the param values that can never be written."""

    batches: list[Batch]
    conflicts: set[tuple[str, frozenset[str]]]
    """(event id, param keys) of each event that logs a param again with another value."""

    @property
    def tenants(self) -> set[str]:
        return {event.tenant_id for batch in self.batches for event, _ in batch}

    def run_ids(self, tenant_id: str) -> set[str]:
        return {e.run_id for batch in self.batches for e, _ in batch if e.tenant_id == tenant_id}

    def metric_keys(self, run_id: str) -> set[str]:
        return {
            point.key
            for batch in self.batches
            for event, _ in batch
            if isinstance(event, MetricsEvent) and event.run_id == run_id
            for point in event.rows()
        }

    def names_run(self, run_id: str) -> bool:
        """Whether a creation event gives the run a name (else MLflow makes one up)."""
        return any(
            isinstance(event, RunCreated) and event.run_id == run_id and event.run_name
            for batch in self.batches
            for event, _ in batch
        )


def event_stream() -> Stream:
    """Five batches: two tenants, six runs."""
    topic = Topic({"acme-corp": 0, "globex": 1})
    resnet = Trainer.starting_at("acme-corp", "vision", T0)
    vit = Trainer.starting_at("acme-corp", "vision", T0 + 1_000)
    bert = Trainer.starting_at("acme-corp", "nlp", T0 + 2_000)
    sketch = Trainer.starting_at("acme-corp", "nlp", T0 + 3_000)  # never gets a creation event
    arima = Trainer.starting_at("globex", "forecast", T0 + 4_000)
    prophet = Trainer.starting_at("globex", "forecast", T0 + 5_000)

    vit_conflict = vit.params(lr="0.002", optimizer="adamw")  # lr again, in the batch that set it
    bert_conflict = bert.params(lr="0.02", warmup="100")  # lr again, a batch after it was set
    special_values = vit.metrics(
        "edge",
        (-5, T0 + 1_010, NAN),
        (0, T0 + 1_010, INF),
        (0, T0 + 1_011, -INF),
        (1, T0 + 1_010, 0.0),
        (1, T0 + 1_011, -0.0),
    )

    batch_1 = topic.append(
        resnet.created(
            run_name="resnet-50",
            user_id="alice@acme.com",
            description="baseline",
            tags={"team": "vision", "priority": "high"},
        ),
        resnet.params(lr="0.01", batch_size="32"),
        resnet.metrics("loss", (0, T0 + 10, 1.0), (1, T0 + 20, 0.8), (2, T0 + 30, 0.6)),
        resnet.metrics("acc", (0, T0 + 10, 0.1)),
        bert.metrics("loss", (0, T0 + 2_010, 0.9)),  # creates bert: its RunCreated comes later
        vit.created(
            run_name="vit-b16",
            user_id="carol@acme.com",
            tags={"team": "vision", "priority": "high"},
        ),
        vit.params(lr="0.001"),
        vit_conflict,
        special_values,
        special_values,  # published twice: a producer retry, two records of one event
        arima.created(run_name="arima", tags={"team": "ts", "stage": "dev", "priority": "high"}),
        arima.tags(stage="staging"),
        arima.tags(stage="qa"),
        arima.params(lr="0.01"),
        arima.metrics("loss", (3, T0 + 4_010, 0.5), (3, T0 + 4_011, 0.45), (3, T0 + 4_012, 0.44)),
    )
    batch_2 = [
        *redelivered(batch_1[-3:]),  # a partial overlap with the batch before
        *topic.append(
            resnet.metrics("loss", (3, T0 + 40, 0.5), (4, T0 + 50, 0.3)),
            resnet.metrics("acc", (1, T0 + 40, 0.5)),
            bert.params(lr="0.01"),
            bert.tags(team="research"),
            sketch.metrics("loss", (0, T0 + 3_010, 0.7), (1, T0 + 3_020, 0.45)),
            sketch.tags(team="nlp", priority="high"),
            vit.metrics("edge", (INT64_MAX, T0 + 1_020, 1.5), (INT64_MIN, T0 + 1_020, -1.5)),
            vit.tags(team="platform"),
            arima.metrics("loss", (4, T0 + 4_020, 0.3), (4, T0 + 4_020, 0.31)),
            arima.params(lr="0.01"),  # the same value again is no conflict
            prophet.created(tags={"team": "forecasting", "priority": "high"}),  # no name
            prophet.params(lr="0.05"),
            prophet.metrics("loss", (0, T0 + 5_010, 0.6)),
        ),
    ]
    batch_3 = topic.append(
        bert.created(
            run_name="bert-base",
            description="fine-tuned",
            user_id="bob@acme.com",
            tags={"team": "nlp", "priority": "high"},
            start_time=T0 + 2_500,  # later than the run its metrics created
        ),
        resnet.metrics("loss", (5, T0 + 60, 0.2)),
        resnet.ended(RunStatus.FINISHED, T0 + 60_000),
        vit.metrics("loss", (0, T0 + 1_030, 0.7), (1, T0 + 1_040, NAN)),
        vit.ended(RunStatus.FAILED, T0 + 61_000),
        sketch.metrics("loss", (2, T0 + 3_030, 0.4)),
        arima.ended(RunStatus.FINISHED, arima.start_time - 10_000),  # before its start
        arima.tags(stage="prod"),
    )
    batch_4 = [
        *redelivered(batch_3),  # the whole batch again
        *topic.append(
            bert_conflict,
            bert.metrics("loss", (1, T0 + 2_020, 0.35)),
            bert.ended(RunStatus.KILLED, T0 + 62_000),
            resnet.ended(RunStatus.KILLED, T0 + 70_000),  # a second end: the first one stands
            prophet.metrics("loss", (1, T0 + 5_020, 0.55)),
        ),
    ]
    batch_5 = redelivered(batch_1)  # a replay of the first batch, after everything else
    return Stream(
        batches=[batch_1, batch_2, batch_3, batch_4, batch_5],
        conflicts={
            (str(vit_conflict.event_id), frozenset({"lr"})),
            (str(bert_conflict.event_id), frozenset({"lr"})),
        },
    )


# Writing


class Rejected(NamedTuple):
    """A rejection, without its wording (which may differ between the paths)."""

    batch: int
    source: RecordRef | None
    event_id: str | None
    param_keys: frozenset[str]


async def write(sink: MlflowSink, batches: list[Batch]) -> set[Rejected]:
    """Feeds ``batches`` as a worker does (add every record, flush once per batch), and
    returns what the sink rejected."""
    rejected = set()
    for number, batch in enumerate(batches, start=1):
        for event, source in batch:
            sink.add(event, source)
        for rejection in await sink.flush():
            event_id = str(rejection.event.event_id) if rejection.event else None
            keys = param_keys_named(rejection)
            rejected.add(Rejected(number, rejection.source, event_id, keys))
    return rejected


def param_keys_named(rejection: Rejection) -> frozenset[str]:
    """The params of the rejected event that its reason names (a rejection carries no key)."""
    params: dict[str, str] = getattr(rejection.event, "params", {})
    return frozenset(
        key for key in params if re.search(rf"(?<!\w){re.escape(key)}(?!\w)", rejection.reason)
    )


# Reading back


@dataclass(frozen=True)
class StoreView:
    """What MLflow's client reads from one store, without what may differ between stores."""

    experiments: dict[str, dict[str, str]]
    """Per MLflow experiment name: its tags."""
    runs: dict[str, dict[str, Any]]
    """Per producer run id: the run's info, data and metric histories."""
    searches: dict[tuple[str, str], list[str]]
    """Per (tenant, search name): the producer run ids found, in order."""


def read_back(tracking_uri: str, stream: Stream) -> StoreView:
    """Reads every run of the stream, and every search of each tenant, from one store."""
    client = MlflowClient(tracking_uri)
    reader = RunReader(tracking_uri)
    experiments: dict[str, dict[str, str]] = {}
    runs: dict[str, dict[str, Any]] = {}
    searches: dict[tuple[str, str], list[str]] = {}
    for tenant_id in sorted(stream.tenants):
        experiments |= {e.name: e.tags for e in reader.experiments(tenant_id)}
        for run_id in stream.run_ids(tenant_id):
            found = reader.find_run(tenant_id, run_id)
            assert found is not None, f"run {run_id} of {tenant_id} is not in {tracking_uri}"
            runs[run_id] = run_view(client, client.get_run(found.info.run_id), stream)
        experiment_ids = reader.experiment_ids(tenant_id)
        for name, (filter_string, order_by) in SEARCHES.items():
            found_runs = client.search_runs(experiment_ids, filter_string, order_by=order_by)
            searches[tenant_id, name] = [run.data.tags[RUN_ID_TAG] for run in found_runs]
    return StoreView(experiments, runs, searches)


def run_view(client: MlflowClient, run: Run, stream: Stream) -> dict[str, Any]:
    """One run as the client reads it; ids and artifact URIs are left out (they may differ)."""
    info, data = run.info, run.data
    tags = dict(data.tags)
    run_name = info.run_name
    if not stream.names_run(tags[RUN_ID_TAG]):
        # MLflow names a run created without a name at random: compare that it did, alike.
        assert run_name, f"run {tags[RUN_ID_TAG]} has no name"
        assert tags.get(RUN_NAME_TAG) == run_name, f"run {run_name}: name and tag differ"
        run_name = tags[RUN_NAME_TAG] = "<generated>"
    keys = stream.metric_keys(tags[RUN_ID_TAG]) | data.metrics.keys()
    return {
        "experiment": client.get_experiment(info.experiment_id).name,
        "status": info.status,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "lifecycle_stage": info.lifecycle_stage,
        "user_id": info.user_id,
        "run_name": run_name,
        "metrics": {key: comparable(value) for key, value in data.metrics.items()},
        "params": data.params,
        "tags": tags,
        "history": {key: metric_history(client, info.run_id, key) for key in sorted(keys)},
    }


def metric_history(client: MlflowClient, mlflow_run_id: str, key: str) -> list[tuple[Any, ...]]:
    """Every row of ``key``, as (step, timestamp, value), sorted."""
    rows = client.get_metric_history(mlflow_run_id, key)
    return sorted((m.step, m.timestamp, comparable(m.value)) for m in rows)


def comparable(value: float) -> str:
    """A metric value as text, equal exactly when the floats are the same: float equality
    is not that for NaN (never equal to itself) nor for -0.0 (equal to 0.0)."""
    return repr(float(value))


# The test


@pytest.fixture(
    params=["new_sqlite_store", pytest.param("new_postgres_store", marks=pytest.mark.slow)],
    ids=["sqlite", "postgresql"],
)
def new_store(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Makes fresh, empty MLflow stores of one kind: ``new_store(name)`` returns a URI."""
    factory: Callable[[str], str] = request.getfixturevalue(request.param)
    return factory


async def test_the_bulk_path_leaves_a_store_that_mlflow_reads_as_after_the_api_path(
    new_store: Callable[[str], str], tmp_path: Path
) -> None:
    stream = event_stream()
    artifacts = str(tmp_path / "artifacts")
    api_uri, bulk_uri = new_store("api"), new_store("bulk")
    api = MlflowSink(
        MlflowSettings(tracking_uri=api_uri, artifact_root=artifacts, write_path=WritePath.API)
    )
    bulk = MlflowSink(MlflowSettings(tracking_uri=bulk_uri, artifact_root=artifacts))
    assert api.write_path == "api"
    assert bulk.write_path == "bulk", "a fresh SQL store of a known schema takes the bulk path"

    api_rejected = await write(api, stream.batches)
    bulk_rejected = await write(bulk, stream.batches)

    assert {(r.event_id, r.param_keys) for r in api_rejected} == stream.conflicts
    assert bulk_rejected == api_rejected
    expected = read_back(api_uri, stream)
    assert all(expected.searches.values()), "every search finds runs, or it compares nothing"
    got = read_back(bulk_uri, stream)
    assert got.experiments == expected.experiments
    for run_id, run in expected.runs.items():
        assert got.runs[run_id] == run, f"run {run_id} reads differently after the bulk path"
    assert got.searches == expected.searches
