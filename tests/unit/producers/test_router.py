"""The router keeps every record Kafka failed: it goes to the spool with the rest."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import RecordMetadata, TopicPartition

from ingest import codec
from ingest.events import (
    EventEnvelope,
    MetricsColumns,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
    TagsSet,
)
from ingest.ids import new_run_id
from ingest.settings import KafkaSettings
from producers import ProducerSettings, ProducerTelemetry
from producers.delivery.buffer import EventBuffer, RunIdentity, pack
from producers.delivery.router import EventRouter
from producers.spool.directory import EventSpool
from producers.spool.segment import open_segment


class ControlledPublisher:
    """Stands in for Kafka: each publish returns a future the test settles."""

    def __init__(self) -> None:
        self.started = True
        self.futures: list[asyncio.Future[RecordMetadata]] = []
        self.values: list[bytes] = []

    async def publish(
        self, event: EventEnvelope, value: bytes | None = None
    ) -> asyncio.Future[RecordMetadata]:
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        self.values.append(value if value is not None else codec.encode(event))
        return future

    async def abort(self, within_s: float) -> None:
        self.started = False


async def test_a_record_kafka_fails_is_spooled_not_lost_and_the_gauge_shows_it(
    tmp_path: Path,
) -> None:
    settings = ProducerSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1", topic="t.events"),
        spool_dir=tmp_path / "spool",
    )
    buffer = EventBuffer(max_bytes=10**6)
    metrics = ProducerTelemetry()
    publisher = ControlledPublisher()
    router = EventRouter(settings, buffer, metrics, publisher)  # type: ignore[arg-type]
    run = RunIdentity("acme-corp", new_run_id(), "exp")

    buffer.add_metrics(run, 282, 1_000, [("loss", 0.5)])
    await router.step()
    (sent,) = publisher.futures
    sent.set_exception(KafkaConnectionError())  # the broker went away mid-flight
    await asyncio.sleep(0)  # the done callback runs
    await router.step()  # the outage: everything unacknowledged goes to the spool

    assert router.spool is not None
    (record,) = router.spool.read(10)
    event = codec.decode(record.value)
    assert isinstance(event, MetricsColumns)
    assert [(p.step, p.value) for p in event.rows()] == [(282, 0.5)]
    registry = metrics.registry
    assert registry.get_sample_value("matih_ingest_producer_spool_events") == 1
    assert (
        registry.get_sample_value("matih_ingest_producer_spool_bytes")
        == router.spool.size_bytes
        > 0
    )
    router.spool.close()


def acked(future: asyncio.Future[RecordMetadata], offset: int) -> None:
    partition = TopicPartition("t.events", 0)
    future.set_result(RecordMetadata("t.events", 0, partition, offset, None, -1, None))


def overload_router(
    tmp_path: Path,
    open_spool: Any = None,
    metrics: ProducerTelemetry | None = None,
    **spool: Any,
) -> tuple[EventRouter, EventBuffer, ControlledPublisher]:
    """A router whose memory holds a few 1000-point records in flight and in the backlog
    (a quarter each of 1 MiB) and whose Kafka acknowledges only when the test says;
    ``spool`` overrides the spool's settings."""
    settings = ProducerSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1", topic="t.events"),
        spool_dir=tmp_path / "spool",
        spool_fsync=False,
        memory_bytes=1024 * 1024,
        **spool,
    )
    buffer = EventBuffer(max_bytes=10**8)  # not its subject: the sender is never starved here
    publisher = ControlledPublisher()
    router = EventRouter(settings, buffer, metrics, publisher, open_spool)  # type: ignore[arg-type]
    return router, buffer, publisher


def log_records(buffer: EventBuffer, run: RunIdentity, first: int, count: int) -> None:
    """``count`` calls of 1000 points each (one record each), steps from ``first``."""
    for step in range(first, first + count):
        buffer.add_metrics(
            run, step, 1_000 + step, [(f"m{i}", step + i / 1000) for i in range(1000)]
        )


async def log_in_steps(
    router: EventRouter, buffer: EventBuffer, run: RunIdentity, count: int
) -> None:
    """``count`` records, a sender step after each (the buffer stays under its mark, so
    they go to Kafka, as far as the in-flight share allows)."""
    for step in range(count):
        log_records(buffer, run, step, 1)
        await router.step()


def steps_of(values: list[bytes]) -> list[int]:
    """The first step of each metrics record in ``values``."""
    return [
        event.steps[0] for event in map(codec.decode, values) if isinstance(event, MetricsColumns)
    ]


async def test_when_kafka_lags_the_oldest_events_spill_to_the_spool_and_keep_their_order(
    tmp_path: Path,
) -> None:
    """Memory full: the records in flight are copied to the spool's head, then the
    backlog follows; nothing newer overtakes them, and copies of records Kafka then
    acknowledged are not sent twice."""
    router, buffer, publisher = overload_router(tmp_path)
    run = RunIdentity("acme-corp", new_run_id(), "exp")
    await log_in_steps(router, buffer, run, 3)
    in_flight = len(publisher.futures)
    assert 1 <= in_flight <= 3, "a quarter of 1 MiB holds about three 1000-point records"
    log_records(buffer, run, 3, 10)
    await router.step()  # the backlog outgrows its quarter: everything pending spills

    assert router.spool is not None
    assert router.spool.events == 13, "the records in flight are copied, then all the rest"
    assert len(publisher.futures) == in_flight, "nothing newer is sent past what is in flight"
    assert router.in_flight_bytes + router.backlog.size_bytes <= 512 * 1024

    for offset, future in enumerate(publisher.futures):
        acked(future, offset)
    await asyncio.sleep(0)
    sent_before = len(publisher.futures)
    while router.spool.events:
        await router.step()
        for offset, future in enumerate(publisher.futures[sent_before:], start=100):
            if not future.done():
                acked(future, offset)
        await asyncio.sleep(0)
    sent = publisher.values[sent_before:]
    assert steps_of(sent) == list(range(in_flight, 13)), "in order, copies not sent again"
    router.spool.close()


async def test_a_record_in_flight_that_kafka_fails_after_a_spill_is_sent_before_newer_ones(
    tmp_path: Path,
) -> None:
    router, buffer, publisher = overload_router(tmp_path)
    run = RunIdentity("acme-corp", new_run_id(), "exp")
    await log_in_steps(router, buffer, run, 3)
    in_flight = len(publisher.futures)
    log_records(buffer, run, 3, 10)
    await router.step()  # spilled behind copies of what is in flight
    publisher.futures[0].set_exception(KafkaConnectionError())
    await asyncio.sleep(0)
    await router.step()  # the outage: unacked records are in the spool already
    assert router.spool is not None
    assert router.spool.events == 13, "the failed records are not spooled a second time"
    publisher.started = True  # Kafka is back
    sent_before = len(publisher.futures)
    while router.spool.events:
        await router.step()
        for offset, future in enumerate(publisher.futures[sent_before:], start=100):
            if not future.done():
                acked(future, offset)
        await asyncio.sleep(0)
    assert steps_of(publisher.values[sent_before:]) == list(range(13))
    assert in_flight >= 1
    router.spool.close()


def records_bytes(first: int, count: int) -> int:
    """What the records of ``log_records(..., first, count)`` take in the spool."""
    buffer = EventBuffer(max_bytes=10**8)
    log_records(buffer, RunIdentity("acme-corp", new_run_id(), "exp"), first, count)
    return sum(outgoing.entry.size for outgoing in pack(buffer.take()))


async def spool_in_flight(
    router: EventRouter, buffer: EventBuffer, publisher: ControlledPublisher
) -> list[asyncio.Future[RecordMetadata]]:
    """Kafka fails the first records, comes back, and is sent them again from the spool:
    they are in the spool, in flight, unacked. Their futures."""
    run = RunIdentity("acme-corp", new_run_id(), "exp")
    await log_in_steps(router, buffer, run, 3)
    publisher.futures[0].set_exception(KafkaConnectionError())
    await asyncio.sleep(0)
    await router.step()  # the outage: what is unacked goes to the spool
    publisher.started = True  # Kafka is back
    sent_before = len(publisher.futures)
    await router.step()  # sends from the spool
    resent = publisher.futures[sent_before:]
    assert resent, "the spool's records are in flight again"
    return resent


async def test_a_full_spool_waits_for_kafka_to_free_room_then_drops_the_oldest_points(
    tmp_path: Path,
) -> None:
    """The spool is full of records Kafka holds unacknowledged: the spilling sender
    waits ``spool_full_wait_s`` (asynchronously: the trainer keeps logging into memory),
    then makes room by dropping the oldest metric points, counted."""
    bound = records_bytes(100, 14) + records_bytes(0, 1) // 2  # the 14 fit an empty spool
    router, buffer, publisher = overload_router(
        tmp_path, spool_max_bytes=bound, spool_full_wait_s=0.3
    )
    await spool_in_flight(router, buffer, publisher)
    log_records(buffer, RunIdentity("acme-corp", new_run_id(), "exp"), 100, 14)
    started = asyncio.get_running_loop().time()
    await router.step()  # spills 14 records where fewer fit: waits, then drops
    assert 0.3 <= asyncio.get_running_loop().time() - started < 2.0
    assert router.spool is not None
    assert router.spool.dropped_points > 0
    assert router.spool.dropped_points % 1000 == 0, "whole records, oldest first"
    assert router.spool.size_bytes <= bound
    router.spool.close()


async def test_a_full_spool_takes_the_room_kafkas_acks_free_while_it_waits(
    tmp_path: Path,
) -> None:
    bound = records_bytes(100, 14) + records_bytes(0, 1) // 2  # the 14 fit an empty spool
    router, buffer, publisher = overload_router(
        tmp_path, spool_max_bytes=bound, spool_full_wait_s=5.0
    )
    resent = await spool_in_flight(router, buffer, publisher)

    async def ack_later() -> None:
        await asyncio.sleep(0.2)
        for offset, future in enumerate(resent):
            acked(future, offset)

    acker = asyncio.create_task(ack_later())
    log_records(buffer, RunIdentity("acme-corp", new_run_id(), "exp"), 100, 14)
    started = asyncio.get_running_loop().time()
    await router.step()
    await acker
    assert 0.15 <= asyncio.get_running_loop().time() - started < 4.0
    assert router.spool is not None
    assert router.dropped_points == 0
    assert router.spool.events == 14
    router.spool.close()


async def test_a_full_disk_while_spilling_drops_the_oldest_points_and_keeps_the_run_events(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The spool's writes fail with ENOSPC and Kafka is slow: the oldest metric records
    held in memory are dropped and counted; run creation, params, tags and the end stay,
    and memory stays within its share."""

    class FullDisk:
        """A segment file on a full disk: it opens, and every write fails."""

        def write(self, pieces: Sequence[bytes]) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        def sync(self) -> None:
            pass

        def close(self) -> None:
            pass

    def open_spool(settings: ProducerSettings) -> EventSpool:
        return EventSpool.create(
            settings.spool_dir,
            settings.spool_max_bytes,
            False,
            {},
            open_file=lambda path, truncate: FullDisk(),
        )

    metrics = ProducerTelemetry()
    router, buffer, publisher = overload_router(tmp_path, open_spool, metrics)
    run = RunIdentity("acme-corp", new_run_id(), "exp")
    envelope = {"tenant_id": run.tenant_id, "run_id": run.run_id, "experiment_name": "exp"}
    buffer.add_event(RunCreated(**envelope, start_time=1))
    buffer.add_event(ParamsLogged(**envelope, params={"lr": "0.1"}))
    log_records(buffer, run, 0, 10)
    buffer.add_event(TagsSet(**envelope, tags={"phase": "a"}))
    log_records(buffer, run, 10, 10)
    buffer.add_event(RunEnded(**envelope, status=RunStatus.FINISHED, end_time=2))
    with caplog.at_level(logging.WARNING):
        await router.step()

    assert "could not write the spool" in caplog.text
    assert "dropped the oldest metric points" in caplog.text
    kept = publisher.values + [item.entry.value for item in router.backlog]  # sent, then held
    events = [codec.decode(value) for value in kept]
    assert [e.kind for e in events if not isinstance(e, MetricsColumns)] == [
        "run.created",
        "params.logged",
        "tags.set",
        "run.ended",
    ]
    kept_steps = [e.steps[0] for e in events if isinstance(e, MetricsColumns)]
    assert kept_steps == list(range(20 - len(kept_steps), 20)), "the newest points stay"
    assert router.backlog.dropped_points == 1000 * (20 - len(kept_steps)) > 0
    registry = metrics.registry
    dropped = registry.get_sample_value("matih_ingest_producer_dropped_points_total")
    assert dropped == router.backlog.dropped_points
    assert registry.get_sample_value("matih_ingest_producer_memory_bytes") == (
        router.backlog.size_bytes + router.in_flight_bytes
    )
    assert router.backlog.size_bytes <= router.backlog.max_bytes + 16 * 1024


async def test_a_spilling_step_writes_all_it_took_with_one_write_into_a_file_kept_open(
    tmp_path: Path,
) -> None:
    """Every system call releases Python's GIL, which a training loop that never sleeps
    hands back only after a switch interval: a step that spills writes its whole
    backlog at once, and the next step appends to the same open file."""
    opened: list[Path] = []
    writes: list[int] = []

    class Recording:
        """A segment file that counts its opens and writes."""

        def __init__(self, path: Path, truncate: bool) -> None:
            opened.append(path)
            self._file = open_segment(path, truncate)

        def write(self, pieces: Sequence[bytes]) -> None:
            writes.append(len(pieces))
            self._file.write(pieces)

        def sync(self) -> None:
            self._file.sync()

        def close(self) -> None:
            self._file.close()

    def open_spool(settings: ProducerSettings) -> EventSpool:
        return EventSpool.create(
            settings.spool_dir, settings.spool_max_bytes, False, {}, open_file=Recording
        )

    router, buffer, _ = overload_router(tmp_path, open_spool)
    run = RunIdentity("acme-corp", new_run_id(), "exp")
    log_records(buffer, run, 0, 30)  # far past the buffer's mark: the sender lags
    await router.step()
    assert router.spool is not None
    assert router.spool.events == 30
    assert (len(opened), writes) == (1, [60]), "one write of 30 headers and 30 payloads"
    log_records(buffer, run, 30, 30)
    await router.step()
    assert (len(opened), len(writes)) == (1, 2)
    assert steps_of([record.value for record in router.spool.read(100)]) == list(range(60))
    router.spool.close()


async def test_an_event_over_kafkas_request_size_is_refused_counted_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kafka would refuse it for good: it is dropped with one error line and counted in
    the delivery report, and the run's other events still go."""
    settings = ProducerSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1", topic="t.events"),
        spool_dir=tmp_path / "spool",
        max_request_bytes=8 * 1024,
    )
    buffer = EventBuffer(max_bytes=10**6)
    publisher = ControlledPublisher()
    router = EventRouter(settings, buffer, None, publisher)  # type: ignore[arg-type]
    run = RunIdentity("acme-corp", new_run_id(), "exp")
    envelope = {"tenant_id": run.tenant_id, "run_id": run.run_id, "experiment_name": "exp"}
    buffer.add_event(RunCreated(**envelope, start_time=1))
    buffer.add_event(ParamsLogged(**envelope, params={f"p{i}": "x" * 100 for i in range(100)}))
    buffer.add_event(TagsSet(**envelope, tags={"phase": "a"}))
    with caplog.at_level(logging.ERROR):
        await router.step()

    assert [codec.decode(value).kind for value in publisher.values] == ["run.created", "tags.set"]
    assert router.rejected == 1
    assert "dropped a params.logged event of run" in caplog.text
    assert "over the 7168 that max_request_bytes allows" in caplog.text
