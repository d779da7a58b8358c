"""Both versions of the metrics event on one topic, for the same run, through a real
worker and a replay: MLflow holds every point once, exactly as version 1 alone writes it."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from consumers import MlflowSink
from consumers.redrive import redrive
from consumers.replay import Replayer
from ingest import codec
from ingest.events import (
    EventEnvelope,
    MetricPoint,
    MetricsColumns,
    MetricsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
)
from ingest.ids import new_run_id
from ingest.layout import mlflow_experiment_name
from ingest.settings import KafkaSettings, MlflowSettings
from producers import ProducerSettings
from tests.integration.support import WorkerThread, publish_and_wait_written, snapshot

pytestmark = pytest.mark.integration

TENANT = "acme-corp"
NOW = 1_760_000_000_000
# 40 steps of two keys, with the values MLflow stores specially among them.
POINTS = [
    (key, value, step, NOW + step)
    for step in range(40)
    for key, value in (
        ("loss", math.nan if step == 3 else 1 / (step + 1)),
        ("acc", math.inf if step == 5 else -math.inf if step == 6 else step / 40),
    )
]


def v1(run: dict[str, Any], points: list[tuple[str, float, int, int]]) -> MetricsLogged:
    return MetricsLogged(
        **run,
        metrics=tuple(MetricPoint(key=k, value=v, step=s, timestamp=t) for k, v, s, t in points),
    )


def v2(run: dict[str, Any], points: list[tuple[str, float, int, int]]) -> MetricsColumns:
    keys = list(dict.fromkeys(k for k, _, _, _ in points))
    return MetricsColumns(
        **run,
        keys=tuple(keys),
        key_index=tuple(keys.index(k) for k, _, _, _ in points),
        values=tuple(v for _, v, _, _ in points),
        steps=tuple(s for _, _, s, _ in points),
        timestamps=tuple(t for _, _, _, t in points),
    )


def whole_run(run: dict[str, Any], metrics: list[EventEnvelope]) -> list[EventEnvelope]:
    return [
        RunCreated(**run, start_time=NOW),
        *metrics,
        RunEnded(**run, status=RunStatus.FINISHED, end_time=NOW + 100),
    ]


def histories(tracking_uri: str) -> dict[str, dict[str, list[tuple[int, int, str]]]]:
    """Per producer run id, per key, the metric rows MLflow's client reads back, in
    (step, timestamp, repr of value) order: NaN compares equal to NaN this way."""
    return {
        run_id: {
            key: sorted((step, ts, repr(value)) for step, ts, value in rows)
            for key, rows in data["history"].items()
        }
        for run_id, data in snapshot(tracking_uri, TENANT).items()
    }


async def test_a_topic_of_both_versions_writes_each_point_once_as_version_1_does(
    worker: WorkerThread,
    producer_settings: ProducerSettings,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
) -> None:
    """One run gets its points only as version 1 (the reference); the other gets the
    same points in both versions, overlapping, and a redelivered version 2 event.
    MLflow, read through its client, holds the same rows for both runs, each point
    once; a replay of the topic into an empty store rebuilds them exactly."""
    reference = {"tenant_id": TENANT, "run_id": new_run_id(), "experiment_name": "versions"}
    mixed = {**reference, "run_id": new_run_id()}
    redelivered = v2(mixed, POINTS[20:60])
    events = [
        *whole_run(reference, [v1(reference, POINTS[:50]), v1(reference, POINTS[50:])]),
        *whole_run(
            mixed,
            [
                v1(mixed, POINTS[:30]),  # the gateway, or a trainer on an older SDK
                redelivered,  # overlaps steps 10-14 of the event before
                v1(mixed, POINTS[50:]),
                redelivered,  # the same event again, as a retried send delivers it
                v2(mixed, POINTS[:10]),
            ],
        ),
    ]
    await publish_and_wait_written(producer_settings, events)

    client = MlflowClient(tracking_uri=worker.settings.mlflow.tracking_uri)
    written = histories(worker.settings.mlflow.tracking_uri)
    assert written[mixed["run_id"]] == written[reference["run_id"]]
    loss = written[mixed["run_id"]]["loss"]
    assert len(loss) == len(written[mixed["run_id"]]["acc"]) == 40
    assert loss[0] == (0, NOW, "1.0")
    assert loss[3] == (3, NOW + 3, "nan")
    assert loss[39] == (39, NOW + 39, repr(1 / 40))
    (run,) = client.search_runs(
        [client.get_experiment_by_name(mlflow_experiment_name(TENANT, "versions")).experiment_id],
        filter_string=f"tags.`matih.run_id` = '{mixed['run_id']}'",
    )
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"loss": 1 / 40, "acc": 39 / 40}

    rebuilt = MlflowSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'rebuilt' / 'mlflow.db'}",
        artifact_root=str(tmp_path / "rebuilt" / "artifacts"),
    )
    async with Replayer(kafka_settings, MlflowSink(rebuilt), tenant=TENANT) as replayer:
        summary = await replayer.replay(await replayer.plan(0, None))
    assert summary.points == 80 + 30 + 40 + 30 + 40 + 10  # every point read, duplicates too
    assert not summary.dead_letters
    assert histories(rebuilt.tracking_uri) == written


async def test_a_dead_lettered_compact_event_is_redriven_and_written_exactly(
    producer_settings: ProducerSettings, worker: WorkerThread
) -> None:
    """Version 2 points for a run nobody created yet are dead-lettered (no experiment
    to put them in); once the run exists, ``dlq redrive`` delivers the record as it was,
    and MLflow holds its points, NaN and infinities included, once each."""
    run = {"tenant_id": TENANT, "run_id": new_run_id()}
    orphan = v2(run, POINTS[:20])
    await publish_and_wait_written(producer_settings, [orphan])
    await publish_and_wait_written(
        producer_settings, [RunCreated(**run, experiment_name="versions", start_time=NOW)]
    )
    assert histories(worker.settings.mlflow.tracking_uri)[run["run_id"]] == {}

    (letter,) = await redrive(producer_settings.kafka)
    assert "does not exist and no event names its experiment" in letter.error
    assert letter.value == codec.encode(orphan)
    deadline = asyncio.get_running_loop().time() + 30
    while not histories(worker.settings.mlflow.tracking_uri)[run["run_id"]]:
        assert asyncio.get_running_loop().time() < deadline, "the re-driven points did not land"
        await asyncio.sleep(0.2)
    written = histories(worker.settings.mlflow.tracking_uri)[run["run_id"]]
    assert written["loss"] == [
        (step, NOW + step, "nan" if step == 3 else repr(1 / (step + 1))) for step in range(10)
    ]
    assert [value for _, _, value in written["acc"]][4:7] == [
        "0.1",
        "1.7976931348623157e+308",
        "-1.7976931348623157e+308",
    ]
