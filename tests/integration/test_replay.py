"""Replay against a real broker and real MLflow stores: rebuild, idempotence, windows,
filters, poison records, and never touching the workers' offsets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers import MlflowSink
from consumers.replay import Replayer
from ingest.errors import InvalidEventError, KafkaUnavailableError
from ingest.settings import KafkaSettings, MlflowSettings
from tests.integration.ops import committed, groups, publish, publish_raw, run_events
from tests.integration.support import WorkerThread, snapshot, wait_consumed

pytestmark = pytest.mark.integration


def without_ids(snap: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without MLflow's own run ids (a rebuilt store picks new ones)."""
    return {
        run: {k: v for k, v in data.items() if k != "mlflow_run_id"} for run, data in snap.items()
    }


def empty_store(tmp_path: Path, name: str) -> MlflowSettings:
    return MlflowSettings(
        tracking_uri=f"sqlite:///{tmp_path / name / 'mlflow.db'}",
        artifact_root=str(tmp_path / name / "artifacts"),
    )


async def replay(
    kafka: KafkaSettings,
    mlflow: MlflowSettings | None,
    start: Any = 0,
    stop: Any = None,
    **filters: Any,
) -> Any:
    sink = MlflowSink(mlflow) if mlflow else None
    async with Replayer(kafka, sink, **filters) as replayer:
        plan = await replayer.plan(start, stop)
        return await replayer.replay(plan)


async def test_replay_rebuilds_an_empty_store_exactly_and_adds_nothing_to_a_full_one(
    worker: WorkerThread, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Two tenants' runs as the workers wrote them; a replay into an empty store gives the
    same runs, params, tags, statuses, times and metric rows; a replay into the workers'
    store changes nothing; the workers' offsets do not move and no group is created."""
    events = (
        run_events("acme-corp", 30)
        + run_events("globex", 20)
        + run_events("acme-corp", 5, end=False)
    )
    await publish(kafka_settings, events)
    await wait_consumed(worker, len(events))
    live = worker.settings.mlflow.tracking_uri
    written = {t: snapshot(live, t) for t in ("acme-corp", "globex")}
    assert [len(written["acme-corp"]), len(written["globex"])] == [2, 1]
    offsets, known_groups = (
        await committed(kafka_settings, kafka_settings.consumer_group),
        await groups(kafka_settings),
    )

    rebuilt = empty_store(tmp_path, "rebuilt")
    summary = await replay(kafka_settings, rebuilt)
    assert summary.records == summary.matched == len(events)
    assert len(summary.runs) == 3
    assert (summary.created, summary.ended, summary.points) == (3, 2, 2 * (30 + 20 + 5))
    assert (summary.params, summary.tags) == (6, 6)
    assert summary.dead_letters == []
    for tenant in ("acme-corp", "globex"):
        assert without_ids(snapshot(rebuilt.tracking_uri, tenant)) == without_ids(written[tenant])

    again = await replay(kafka_settings, worker.settings.mlflow)
    assert again.matched == len(events)
    for tenant in ("acme-corp", "globex"):
        assert snapshot(live, tenant) == written[tenant]
    assert await committed(kafka_settings, kafka_settings.consumer_group) == offsets
    assert await groups(kafka_settings) == known_groups


async def test_a_time_bounded_replay_writes_only_that_window(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Runs published before, inside and after [from, to): only the one inside is written,
    complete; an offset range [2, 5) replays exactly those records of each partition."""
    before, inside, after = (
        run_events("acme-corp", 3),
        run_events("acme-corp", 4),
        run_events("acme-corp", 5),
    )
    await publish(kafka_settings, before)
    await asyncio.sleep(0.05)
    start = datetime.now(UTC)
    await publish(kafka_settings, inside)
    await asyncio.sleep(0.01)  # --to is exclusive at millisecond precision
    stop = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await publish(kafka_settings, after)

    store = empty_store(tmp_path, "window")
    summary = await replay(kafka_settings, store, start, stop)
    assert summary.records == len(inside)
    runs = snapshot(store.tracking_uri, "acme-corp")
    assert list(runs) == [inside[0].run_id]
    run = runs[inside[0].run_id]
    assert run["status"] == "FINISHED"
    assert run["params"] == {"lr": "0.01", "depth": "6"}
    assert [step for step, _, _ in run["history"]["loss"]] == [0, 1, 2, 3]

    counted = await replay(kafka_settings, None, 2, 5)
    # Every event of one tenant is on one partition (key = tenant).
    assert counted.records == 3
    assert counted.matched == 3


async def test_tenant_and_run_filters_and_dry_run(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """--tenant writes only that tenant's runs, --run only that run; --dry-run counts and
    writes nothing."""
    acme, globex = run_events("acme-corp", 3), run_events("globex", 2)
    second = run_events("acme-corp", 1)
    await publish(kafka_settings, acme + globex + second)

    store = empty_store(tmp_path, "filtered")
    summary = await replay(kafka_settings, store, tenant="globex")
    assert summary.records == len(acme + globex + second)
    assert summary.matched == len(globex)
    assert snapshot(store.tracking_uri, "acme-corp") == {}
    assert list(snapshot(store.tracking_uri, "globex")) == [globex[0].run_id]

    one = await replay(kafka_settings, store, run=second[0].run_id)
    assert one.matched == len(second)
    assert list(snapshot(store.tracking_uri, "acme-corp")) == [second[0].run_id]

    dry = await Replayer(kafka_settings, None).__aenter__()
    try:
        counted = await dry.replay(await dry.plan(0))
    finally:
        await dry.__aexit__()
    assert counted.matched == len(acme + globex + second)
    assert counted.points == 2 * (3 + 2 + 1)
    made = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert made == ["filtered"]  # the dry run made no store


async def test_a_poison_record_is_a_dead_letter_and_the_rest_is_written(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """An undecodable record and an event whose key names another tenant are reported as
    dead letters with their source; every other event is written."""
    events = run_events("acme-corp", 2)
    await publish(kafka_settings, events[:2])
    await publish_raw(kafka_settings, b"not json", b"acme-corp")
    stray = run_events("globex", 1)[0]
    await publish_raw(kafka_settings, stray.model_dump_json().encode(), b"acme-corp")
    await publish(kafka_settings, events[2:])

    store = empty_store(tmp_path, "poison")
    summary = await replay(kafka_settings, store)
    assert summary.records == len(events) + 2
    assert summary.matched == len(events)
    assert len(summary.dead_letters) == 2
    assert all(
        d.source is not None and d.source.topic == kafka_settings.topic
        for d in summary.dead_letters
    )
    assert "differs from the event's tenant_id" in summary.dead_letters[1].reason
    run = snapshot(store.tracking_uri, "acme-corp")[events[0].run_id]
    assert run["status"] == "FINISHED"
    assert len(run["history"]["loss"]) == 2
    assert snapshot(store.tracking_uri, "globex") == {}


async def test_replay_of_a_missing_topic_or_an_absent_broker_fails_clearly(
    kafka_settings: KafkaSettings,
) -> None:
    missing = kafka_settings.model_copy(update={"topic": kafka_settings.topic + ".missing"})
    async with Replayer(missing, None) as replayer:
        with pytest.raises(InvalidEventError, match="does not exist"):
            await replayer.plan(0)
    nowhere = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_s=1)
    with pytest.raises(KafkaUnavailableError, match="is the broker running"):
        async with Replayer(nowhere, None):
            pass
