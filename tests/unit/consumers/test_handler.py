"""The batch handler: bad records never take the batch down; commits follow writes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiokafka.errors import CommitFailedError
from aiokafka.structs import TopicPartition

from consumers import BatchHandler, ConsumerSettings, ListSink, WorkerTelemetry
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
    headers: tuple[tuple[str, bytes], ...] = ()


class Consumer:
    """Commits and seeks as aiokafka's consumer does: without offsets, a commit takes the
    position (after the last record handed out) of every partition still assigned."""

    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: dict[TopicPartition, int] = {}
        self.positions: dict[TopicPartition, int] = {}

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        if offsets is None:
            assigned = self.assignment()
            offsets = {p: at for p, at in self.positions.items() if p in assigned}
        self.commits.append(offsets)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    def assignment(self) -> set[TopicPartition]:
        """Every partition of "events", and those of the records handed out (a pattern
        subscription holds partitions of several topics)."""
        return {TopicPartition("events", p) for p in range(6)} | set(self.positions)


@dataclass
class Message:
    raw_message: tuple[Record, ...]
    consumer: Consumer = field(default_factory=Consumer)

    def __post_init__(self) -> None:
        for record in self.raw_message:
            partition = TopicPartition(record.topic, record.partition)
            self.consumer.positions[partition] = record.offset + 1


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
    sink, stats = ListSink(), WorkerTelemetry()
    message = Message((params_record(0), Record(b"{not json", offset=1), params_record(2)))
    await BatchHandler(sink, settings(), stats)(message)
    assert [e.params["p"] for e in sink.events] == ["0", "2"]  # type: ignore[union-attr]
    assert message.consumer.commits == [{TopicPartition("events", 0): 3}]
    assert (stats.consumed, stats.rejected, stats.rejected_by_kind["undecodable"]) == (3, 1, 1)
    assert "at events[0]@1: value: Invalid JSON" in caplog.text


async def test_a_record_whose_key_tenant_differs_from_its_event_is_rejected() -> None:
    sink, stats = ListSink(), WorkerTelemetry()
    message = Message((params_record(0, tenant="globex", key=b"acme-corp"), params_record(1)))
    await BatchHandler(sink, settings(), stats)(message)
    assert [e.tenant_id for e in sink.events] == ["acme-corp"]
    assert stats.rejected == 1


async def test_an_event_from_another_tenants_topic_is_rejected_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The forged record: globex's credential may write only globex's topic, so an
    acme-corp event (key and envelope agreeing) read from there is never written."""
    sink, stats = ListSink(), WorkerTelemetry()
    forged = params_record(0)
    forged.topic = "matih.runs.events.tenant.globex"
    own = params_record(1)
    own.topic = "matih.runs.events.tenant.acme-corp"
    await BatchHandler(sink, settings(), stats)(Message((forged, own)))
    assert [e.params["p"] for e in sink.events] == ["1"]  # type: ignore[union-attr]
    assert stats.rejected == 1
    assert (
        "event of tenant_id 'acme-corp' came from tenant 'globex''s topic"
        " matih.runs.events.tenant.globex" in caplog.text
    )


async def test_with_run_keys_the_tenant_is_the_key_prefix() -> None:
    sink, stats = ListSink(), WorkerTelemetry()
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
    """Nothing is committed; each partition is rewound to its first unwritten record and
    paused (the consumer keeps polling the others and stays in its group), and resumes
    after the backoff, which doubles per try."""
    sink, stats = FailingSink(failures=2), WorkerTelemetry()
    handler = BatchHandler(sink, settings(), stats)
    message = Message((params_record(0), Record(b"{}", partition=3, offset=9)))
    await handler(message)
    assert (message.consumer.commits, stats.retries) == ([], 1)
    assert message.consumer.seeks == {
        TopicPartition("events", 0): 0,
        TopicPartition("events", 3): 9,
    }
    assert message.consumer.paused == {TopicPartition("events", 0), TopicPartition("events", 3)}
    await asyncio.sleep(0.01)
    assert message.consumer.paused == set()
    await handler(message)  # the redelivered batch fails again: twice the wait
    assert handler.failed_tries == {TopicPartition("events", 0): 2, TopicPartition("events", 3): 2}
    await asyncio.sleep(0.01)
    await handler(message)
    assert message.consumer.commits == [
        {TopicPartition("events", 0): 1, TopicPartition("events", 3): 10}
    ]
    assert handler.failed_tries == {}
    assert len(sink.events) == 1


async def test_a_non_retriable_sink_error_propagates() -> None:
    class BrokenSink(ListSink):
        async def flush(self) -> list[Rejection]:
            raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await BatchHandler(BrokenSink(), settings(), WorkerTelemetry())(
            Message((params_record(0),))
        )


def chunked(max_batch_bytes: int) -> ConsumerSettings:
    return ConsumerSettings(max_batch_bytes=max_batch_bytes, retry_backoff_s=0.001)


async def test_a_batch_is_written_and_committed_in_chunks_bounded_in_bytes() -> None:
    """However much one fetch returns, each write carries at most max_batch_bytes of
    records and is committed before the next begins: a kill redoes one chunk at most."""
    records = tuple(params_record(offset) for offset in range(5))
    size = len(records[0].value or b"")
    sink, stats = ListSink(), WorkerTelemetry()
    message = Message(records)
    await BatchHandler(sink, chunked(2 * size), stats)(message)
    assert [len(batch) for batch in sink.batches] == [2, 2, 1]
    assert message.consumer.commits == [
        {TopicPartition("events", 0): 2},
        {TopicPartition("events", 0): 4},
        {TopicPartition("events", 0): 5},
    ]
    assert (stats.batches, stats.consumed) == (3, 5)


async def test_a_failure_mid_batch_keeps_what_was_committed_and_rewinds_to_the_rest() -> None:
    class FailingSecondFlush(ListSink):
        flushes = 0

        async def flush(self) -> list[Rejection]:
            self.flushes += 1
            if self.flushes == 2:
                self._held.clear()
                raise SinkUnavailableError("store is down")
            return await super().flush()

    records = tuple(params_record(offset) for offset in range(4))
    size = len(records[0].value or b"")
    message = Message(records)
    sink = FailingSecondFlush()
    await BatchHandler(sink, chunked(2 * size), WorkerTelemetry())(message)
    assert message.consumer.commits == [{TopicPartition("events", 0): 2}]
    assert message.consumer.seeks == {TopicPartition("events", 0): 2}
    assert message.consumer.paused == {TopicPartition("events", 0)}
    assert [e.params["p"] for e in sink.events] == ["0", "1"]  # type: ignore[union-attr]


async def test_records_of_partitions_revoked_meanwhile_are_left_to_their_new_owner() -> None:
    class Revoked(Consumer):
        def assignment(self) -> set[TopicPartition]:
            return {TopicPartition("events", 0)}

    mine, theirs = params_record(0), Record(params_record(1).value, partition=1, offset=7)
    message = Message((mine, theirs), consumer=Revoked())
    sink = ListSink()
    await BatchHandler(sink, settings(), WorkerTelemetry())(message)
    assert [e.params["p"] for e in sink.events] == ["0"]  # type: ignore[union-attr]
    assert message.consumer.commits == [{TopicPartition("events", 0): 1}]


async def test_a_commit_refused_after_a_rebalance_leaves_the_rest_to_the_new_owner() -> None:
    class Rebalanced(Consumer):
        async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
            raise CommitFailedError("the group rebalanced")

    records = tuple(params_record(offset) for offset in range(4))
    size = len(records[0].value or b"")
    sink = ListSink()
    await BatchHandler(sink, chunked(2 * size), WorkerTelemetry())(
        Message(records, consumer=Rebalanced())
    )
    assert [e.params["p"] for e in sink.events] == ["0", "1"]  # type: ignore[union-attr]


async def test_the_last_chunk_commits_every_position_so_empty_partitions_have_a_commit() -> None:
    """A partition with nothing to read still gets its commit (offset 0), so lag and
    Kafka's own tools show the group committed everywhere it reads."""
    consumer = Consumer()
    consumer.positions[TopicPartition("events", 5)] = 0
    message = Message((params_record(0), params_record(1)), consumer=consumer)
    await BatchHandler(ListSink(), settings(), WorkerTelemetry())(message)
    assert consumer.commits == [{TopicPartition("events", 0): 2, TopicPartition("events", 5): 0}]
