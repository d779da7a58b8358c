"""Reading per-partition ``[start, end)`` ranges of records: for replay, lag and re-drive.

The ranges are fixed up front (typically up to the log end as it was when reading
began): records appended meanwhile are not read, so a read always finishes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from ingest.kafka.errors import bounded
from ingest.kafka.records import ConsumedRecord
from ingest.settings import KafkaSettings

__all__ = ["OffsetRange", "read_ranges"]

OffsetRange = tuple[int, int]
"""``(start, end)``: the offsets from ``start`` up to, not including, ``end``."""

_POLL_MS = 500


async def read_ranges(
    consumer: AIOKafkaConsumer,
    ranges: Mapping[TopicPartition, OffsetRange],
    settings: KafkaSettings,
    doing: str,
    within_s: float | None = None,
) -> AsyncIterator[tuple[TopicPartition, Sequence[ConsumedRecord]]]:
    """Yields each partition's records of its range, a fetch at a time, in offset order.

    The consumer is assigned the partitions with something to read (replacing its
    assignment) and each is paused once its range is read; the caller unsubscribes
    or stops it afterwards.

    Args:
        consumer: a started consumer (group-less, or of a group that commits by hand).
        ranges: per partition, the offsets to read.
        settings: bounds each fetch (three request timeouts: a fetch waits on data).
        doing: what the read is for, named in an error.
        within_s: stop after this many seconds even if some range is not read yet.

    Raises:
        KafkaUnavailableError: a fetch failed or did not return in time.
    """
    todo = {tp: (start, end) for tp, (start, end) in ranges.items() if end > start}
    if not todo:
        return
    consumer.assign(list(todo))
    for tp, (start, _) in todo.items():
        consumer.seek(tp, start)
    deadline = None if within_s is None else time.monotonic() + within_s
    while todo and (deadline is None or time.monotonic() < deadline):
        fetched = await bounded(
            consumer.getmany(*todo, timeout_ms=_POLL_MS),
            settings,
            doing,
            settings.request_timeout_s * 3,
        )
        for tp, records in fetched.items():
            end = todo[tp][1]
            inside = [r for r in records if r.offset < end]
            if inside:
                yield tp, inside
            if records and records[-1].offset >= end - 1:
                del todo[tp]
                consumer.pause(tp)
