"""Poison records go to the dead-letter topic with their reason; the worker keeps going."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from consumers import ConsumerSettings
from consumers.redrive import redrive
from ingest.cli.main import app
from ingest.events import MetricPoint, MetricsLogged, ParamsLogged, RunCreated
from ingest.ids import new_run_id
from ingest.kafka import kafka_consumer, start
from ingest.settings import KafkaSettings, WritePath
from ingest.topics import dead_letter_topic
from producers import ProducerSettings
from tests.integration.secure import kafka_env
from tests.integration.support import WorkerThread, publish_and_wait_written, snapshot

pytestmark = pytest.mark.integration

TENANT = "acme-corp"


async def read_dead_letters(kafka: KafkaSettings, count: int, timeout: float = 30) -> list[Any]:
    consumer = kafka_consumer(kafka)
    consumer.subscribe([dead_letter_topic(kafka)])
    await start(consumer, kafka)
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: int(dict(r.headers)["matih-dlq-source-offset"]))


@pytest.fixture
def consumer_settings(kafka_settings: KafkaSettings, mlflow_settings: Any) -> ConsumerSettings:
    """A worker that takes records of at most 64 KiB."""
    return ConsumerSettings(
        kafka=kafka_settings,
        mlflow=mlflow_settings,
        batch_timeout_ms=100,
        max_record_bytes=64 * 1024,
    )


async def test_garbage_on_the_topic_is_dead_lettered_with_its_reason(
    producer_settings: ProducerSettings, worker: WorkerThread
) -> None:
    """Not JSON, JSON of the wrong shape, an unknown kind, an oversized record and an
    event whose key names another tenant, produced with a plain Kafka client: each is
    dead-lettered with its reason, source and tenant, and the good events between them
    are written."""
    run_id = new_run_id()
    base = {"tenant_id": TENANT, "run_id": run_id, "experiment_name": "exp"}
    good = [
        MetricsLogged(**base, metrics=(MetricPoint(key="loss", value=0.5, step=0, timestamp=1),)),
        ParamsLogged(**base, params={"lr": "0.01"}),
    ]
    foreign = ParamsLogged(**base, params={"stolen": "1"}).model_dump_json().encode()
    raw = [
        (TENANT.encode(), b"\xff\xfe not json at all"),
        (TENANT.encode(), json.dumps({"hello": "world"}).encode()),
        (TENANT.encode(), json.dumps({**base, "kind": "run.exploded"}).encode()),
        (TENANT.encode(), b'{"pad": "' + b"x" * 100_000 + b'"}'),
        (b"globex", foreign),
    ]
    await publish_and_wait_written(producer_settings, good, raw)
    later = [
        MetricsLogged(**base, metrics=(MetricPoint(key="loss", value=0.25, step=1, timestamp=2),))
    ]
    await publish_and_wait_written(producer_settings, later)

    run = snapshot(worker.settings.mlflow.tracking_uri, TENANT)[run_id]
    assert run["history"]["loss"] == [(0, 1, 0.5), (1, 2, 0.25)]
    assert run["params"] == {"lr": "0.01"}
    assert snapshot(worker.settings.mlflow.tracking_uri, "globex") == {}

    letters = await read_dead_letters(producer_settings.kafka, 5)
    assert len(letters) == 5
    headers = [dict(r.headers) for r in letters]
    reasons = [h["matih-dlq-error"].decode() for h in headers]
    assert "Invalid JSON" in reasons[0]
    assert "kind" in reasons[1]
    assert "Input tag 'run.exploded'" in reasons[2]
    assert reasons[3] == "record is 100011 bytes; at most 65536 (MATIH_CONSUMER_MAX_RECORD_BYTES)"
    assert "record key tenant 'globex' differs from the event's tenant_id 'acme-corp'" in reasons[4]
    assert [r.value for r in letters] == [value for _, value in raw]
    assert [r.key for r in letters] == [key for key, _ in raw]
    assert {h["matih-dlq-source-topic"].decode() for h in headers} == {
        producer_settings.kafka.topic
    }
    assert [h["matih-dlq-tenant"].decode() for h in headers] == [TENANT] * 4 + ["globex"]
    assert all(h["matih-dlq-time"].decode().startswith("20") for h in headers)
    assert worker.telemetry.rejected == 5


@pytest.mark.parametrize(
    "mlflow_settings", [WritePath.AUTO, WritePath.API], ids=["bulk", "store-api"], indirect=True
)
async def test_a_param_relogged_with_another_value_is_dead_lettered_with_the_reason(
    producer_settings: ProducerSettings, worker: WorkerThread
) -> None:
    """Both write paths say it alike (the store API's own words are MLflow's)."""
    run_id = new_run_id()
    base = {"tenant_id": TENANT, "run_id": run_id, "experiment_name": "exp"}
    await publish_and_wait_written(producer_settings, [ParamsLogged(**base, params={"lr": "0.01"})])
    conflicting = ParamsLogged(**base, params={"lr": "0.5"})
    await publish_and_wait_written(producer_settings, [conflicting])
    (letter,) = await read_dead_letters(producer_settings.kafka, 1)
    reason = dict(letter.headers)["matih-dlq-error"].decode()
    assert reason == (
        "param 'lr' was already logged with value '0.01'; params are write-once,"
        " so the value '0.5' cannot be written"
    )
    assert json.loads(letter.value)["event_id"] == str(conflicting.event_id)


async def test_dead_letters_are_listed_shown_and_redriven_once_after_the_fix(
    producer_settings: ProducerSettings, worker: WorkerThread
) -> None:
    """Params for a run nobody created yet are dead-lettered (no experiment to put them
    in); once the run exists, ``dlq redrive`` delivers them, and a second redrive
    re-publishes nothing."""

    run_id = new_run_id()
    orphan = ParamsLogged(tenant_id=TENANT, run_id=run_id, params={"lr": "0.01"})
    await publish_and_wait_written(producer_settings, [orphan])
    (letter,) = await read_dead_letters(producer_settings.kafka, 1)
    assert (
        "does not exist and no event names its experiment"
        in dict(letter.headers)["matih-dlq-error"].decode()
    )

    kafka = producer_settings.kafka
    options = ["--bootstrap-servers", kafka.bootstrap_servers, "--topic", kafka.topic]
    listed = await asyncio.to_thread(
        CliRunner().invoke, app, ["dlq", "list", *options], env=kafka_env(kafka)
    )
    assert listed.exit_code == 0, listed.output
    assert "1 dead letters" in listed.output
    assert TENANT in listed.output
    shown = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["dlq", "show", str(letter.partition), str(letter.offset), *options],
        env=kafka_env(kafka),
    )
    assert shown.exit_code == 0, shown.output
    assert str(orphan.event_id) in shown.output

    await publish_and_wait_written(
        producer_settings,
        [RunCreated(tenant_id=TENANT, run_id=run_id, experiment_name="exp", start_time=1)],
    )
    redriven = await redrive(kafka)
    assert [(d.partition, d.offset) for d in redriven] == [(letter.partition, letter.offset)]
    assert await redrive(kafka) == []
    deadline = asyncio.get_running_loop().time() + 30
    while not snapshot(worker.settings.mlflow.tracking_uri, TENANT).get(run_id, {}).get("params"):
        assert asyncio.get_running_loop().time() < deadline, "the re-driven params did not land"
        await asyncio.sleep(0.2)
    assert snapshot(worker.settings.mlflow.tracking_uri, TENANT)[run_id]["params"] == {"lr": "0.01"}
