"""Redelivery changes nothing; bad input is set aside without stopping the worker."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from ingest.events import (
    EventEnvelope,
    MetricPoint,
    MetricsLogged,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
    TagsSet,
)
from ingest.ids import new_run_id, run_id_time_ms
from ingest.reader import RunReader
from producers import ProducerSettings
from tests.integration.support import WorkerThread, publish_and_wait_written, snapshot

pytestmark = pytest.mark.integration

TENANT = "acme-corp"


def run_events(run_id: str, steps: int = 300) -> list[EventEnvelope]:
    base = {"tenant_id": TENANT, "run_id": run_id, "experiment_name": "exp"}
    start = run_id_time_ms(run_id) or 0
    points = [
        MetricPoint(key="loss", value=1 / (s + 1), step=s, timestamp=start + s)
        for s in range(steps)
    ]
    return [
        RunCreated(**base, run_name="r", start_time=start),
        *(MetricsLogged(**base, metrics=tuple(points[i : i + 100])) for i in range(0, steps, 100)),
        ParamsLogged(**base, params={"lr": "0.01", "depth": "6"}),
        TagsSet(**base, tags={"team": "fraud"}),
        RunEnded(**base, status=RunStatus.FINISHED, end_time=start + 10_000),
    ]


async def test_the_same_events_delivered_twice_leave_mlflow_unchanged(
    producer_settings: ProducerSettings, worker: WorkerThread
) -> None:
    """At-least-once delivery made exactly-once: a second delivery of every event adds no
    run, no metric row, no param and changes no status or time."""
    run_id = new_run_id()
    events = run_events(run_id)
    await publish_and_wait_written(producer_settings, events)
    first = snapshot(worker.settings.mlflow.tracking_uri, TENANT)
    await publish_and_wait_written(producer_settings, events)
    second = snapshot(worker.settings.mlflow.tracking_uri, TENANT)

    assert second == first
    assert list(first) == [run_id]
    run = first[run_id]
    assert run["history"]["loss"] == [
        (s, run_id_time_ms(run_id) + s, 1 / (s + 1)) for s in range(300)
    ]
    assert run["params"] == {"lr": "0.01", "depth": "6"}
    assert run["status"] == "FINISHED"
    assert run["end_time"] == run["start_time"] + 10_000


async def test_a_late_or_replayed_event_never_reopens_an_ended_run(
    producer_settings: ProducerSettings, worker: WorkerThread
) -> None:
    """After the end: a second end, a replayed creation and late metrics change no status
    or end time; the late metric points are still kept."""
    run_id = new_run_id()
    events = run_events(run_id, steps=10)
    await publish_and_wait_written(producer_settings, events)
    base = {"tenant_id": TENANT, "run_id": run_id, "experiment_name": "exp"}
    late = [
        RunEnded(**base, status=RunStatus.KILLED, end_time=1),
        events[0],
        MetricsLogged(**base, metrics=(MetricPoint(key="late", value=1.0, step=0, timestamp=5),)),
    ]
    await publish_and_wait_written(producer_settings, late)
    run = snapshot(worker.settings.mlflow.tracking_uri, TENANT)[run_id]
    assert run["status"] == "FINISHED"
    assert run["end_time"] == run["start_time"] + 10_000
    assert run["history"]["late"] == [(0, 5, 1.0)]


async def test_an_end_time_before_the_start_is_clamped_to_the_start(
    producer_settings: ProducerSettings, worker: WorkerThread
) -> None:
    run_id = new_run_id()
    base = {"tenant_id": TENANT, "run_id": run_id, "experiment_name": "exp"}
    await publish_and_wait_written(
        producer_settings, [RunEnded(**base, status=RunStatus.FAILED, end_time=1_000)]
    )
    run = snapshot(worker.settings.mlflow.tracking_uri, TENANT)[run_id]
    assert run["status"] == "FAILED"
    assert run["start_time"] == run_id_time_ms(run_id)
    assert run["end_time"] == run["start_time"]


async def test_bad_records_are_set_aside_and_the_rest_of_the_batch_is_written(
    producer_settings: ProducerSettings, worker: WorkerThread
) -> None:
    """Garbage, an event of the wrong shape, a param re-logged with another value, and an
    event for a run that cannot be created: each is rejected with its reason and counted;
    every good event around them lands and the worker keeps consuming."""
    run_id = new_run_id()
    base = {"tenant_id": TENANT, "run_id": run_id, "experiment_name": "exp"}
    orphan = {"tenant_id": TENANT, "run_id": new_run_id()}  # names no experiment
    events: list[EventEnvelope] = [
        ParamsLogged(**base, params={"lr": "0.01"}),
        ParamsLogged(**base, params={"lr": "0.5", "depth": "6"}),  # lr conflicts
        ParamsLogged(**orphan, params={"x": "1"}),
        MetricsLogged(**base, metrics=(MetricPoint(key="loss", value=0.25, step=1, timestamp=7),)),
    ]
    raw = [
        (TENANT.encode(), b"\x00\x01 not json"),
        (TENANT.encode(), json.dumps({"kind": "metrics.logged", "tenant_id": TENANT}).encode()),
    ]
    await publish_and_wait_written(producer_settings, events, raw)
    after = [
        MetricsLogged(**base, metrics=(MetricPoint(key="loss", value=0.5, step=2, timestamp=8),))
    ]
    await publish_and_wait_written(producer_settings, after)

    run = snapshot(worker.settings.mlflow.tracking_uri, TENANT)[run_id]
    assert run["params"] == {"lr": "0.01", "depth": "6"}
    assert run["history"]["loss"] == [(1, 7, 0.25), (2, 8, 0.5)]
    assert RunReader(worker.settings.mlflow.tracking_uri).find_run(TENANT, orphan["run_id"]) is None
    assert worker.telemetry.rejected == 4
    assert worker.telemetry.rejected_by_kind == {"undecodable": 2, "params.logged": 2}


async def test_a_param_conflicting_with_the_store_is_rejected_alone(
    producer_settings: ProducerSettings, worker: WorkerThread
) -> None:
    """A param already in MLflow with another value makes MLflow refuse the whole call;
    the sink isolates it and writes the rest of the call."""
    run_id = new_run_id()
    base = {"tenant_id": TENANT, "run_id": run_id, "experiment_name": "exp"}
    await publish_and_wait_written(producer_settings, [ParamsLogged(**base, params={"lr": "0.01"})])
    await publish_and_wait_written(
        producer_settings,
        [
            ParamsLogged(**base, params={"lr": "0.5", "depth": "6", "seed": "1"}),
            TagsSet(**base, tags={"t": "v"}),
            MetricsLogged(
                **base, metrics=(MetricPoint(key="loss", value=0.1, step=0, timestamp=3),)
            ),
        ],
    )
    found = RunReader(worker.settings.mlflow.tracking_uri).find_run(TENANT, run_id)
    assert found is not None
    run = MlflowClient(worker.settings.mlflow.tracking_uri).get_run(found.info.run_id)
    assert run.data.params == {"lr": "0.01", "depth": "6", "seed": "1"}
    assert run.data.tags["t"] == "v"
    assert run.data.metrics == {"loss": 0.1}
    assert worker.telemetry.rejected == 1
