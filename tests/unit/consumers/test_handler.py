"""The batch handler: bad records never take the batch down; commits follow writes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiokafka.structs import TopicPartition

from consumers import BatchHandler, ConsumerSettings, ListSink, WorkerStats
from consumers.batch import Rejection
from consumers.errors import SinkUnavailableError
from ingest import codec
from ingest.events import ParamsLogged
from ingest.ids import new_run_id
from ingest.settings import KafkaSettings, KeyStrategy

RUN = new_run_id()


@dataclass
class Record:
    value: bytes | None
    key: bytes | None = b"acme-corp"
    topic: str = "events"
    partition: int = 0
    offset: int = 0


class Consumer:
    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("events", p) for p in range(6)}


@dataclass
class Message:
    raw_message: tuple[Record, ...]
    consumer: Consumer = field(default_factory=Consumer)
    acked: int = 0
    nacked: int = 0

    async def ack(self) -> None:
        self.acked += 1

    async def nack(self) -> None:
        self.nacked += 1


def params_record(
    offset: int, tenant: str = "acme-corp", key: bytes | None = b"acme-corp"
) -> Record:
    event = ParamsLogged(tenant_id=tenant, run_id=RUN, params={"p": str(offset)})
    return Record(codec.encode(event), key=key, offset=offset)


def settings(strategy: KeyStrategy = KeyStrategy.TENANT) -> ConsumerSettings:
    return ConsumerSettings(kafka=KafkaSettings(key_strategy=strategy), retry_backoff_s=0.001)


async def test_undecodable_records_are_counted_and_the_rest_is_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink, stats = ListSink(), WorkerStats()
    message = Message((params_record(0), Record(b"{not json", offset=1), params_record(2)))
    await BatchHandler(sink, settings(), stats)(message)
    assert [e.params["p"] for e in sink.events] == ["0", "2"]  # type: ignore[union-attr]
    assert message.acked == 1
    assert (stats.consumed, stats.rejected, stats.rejected_by_kind["undecodable"]) == (3, 1, 1)
    assert "at events[0]@1: value: Invalid JSON" in caplog.text


async def test_a_record_whose_key_tenant_differs_from_its_event_is_rejected() -> None:
    sink, stats = ListSink(), WorkerStats()
    message = Message((params_record(0, tenant="globex", key=b"acme-corp"), params_record(1)))
    await BatchHandler(sink, settings(), stats)(message)
    assert [e.tenant_id for e in sink.events] == ["acme-corp"]
    assert stats.rejected == 1


async def test_with_run_keys_the_tenant_is_the_key_prefix() -> None:
    sink, stats = ListSink(), WorkerStats()
    record = params_record(0, key=f"acme-corp/{RUN}".encode())
    await BatchHandler(sink, settings(KeyStrategy.RUN), stats)(Message((record,)))
    assert len(sink.events) == 1
    assert stats.rejected == 0


class FailingSink(ListSink):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def flush(self) -> list[Rejection]:
        if self.failures:
            self.failures -= 1
            self._held.clear()
            raise SinkUnavailableError("store is down")
        return await super().flush()


async def test_a_retriable_failure_rewinds_and_pauses_its_partitions_for_a_backoff() -> None:
    """Nothing is committed; the batch's partitions pause (the consumer keeps polling the
    others and stays in its group) and resume after the backoff, which doubles per try."""
    sink, stats = FailingSink(failures=2), WorkerStats()
    handler = BatchHandler(sink, settings(), stats)
    message = Message((params_record(0), Record(b"{}", partition=3, offset=9)))
    await handler(message)
    assert (message.acked, message.nacked, stats.retries) == (0, 1, 1)
    assert message.consumer.paused == {TopicPartition("events", 0), TopicPartition("events", 3)}
    await asyncio.sleep(0.01)
    assert message.consumer.paused == set()
    await handler(message)  # the redelivered batch fails again: twice the wait
    assert handler._failures == {TopicPartition("events", 0): 2, TopicPartition("events", 3): 2}
    await asyncio.sleep(0.01)
    await handler(message)
    assert (message.acked, message.nacked) == (1, 2)
    assert handler._failures == {}
    assert len(sink.events) == 1


async def test_a_non_retriable_sink_error_propagates() -> None:
    class BrokenSink(ListSink):
        async def flush(self) -> list[Rejection]:
            raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await BatchHandler(BrokenSink(), settings(), WorkerStats())(Message((params_record(0),)))
