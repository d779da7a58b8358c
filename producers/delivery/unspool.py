"""Sending spooled records: the one loop that reads the spool and hands records to Kafka.

The live sender (``producers.delivery.router``) and the recovery of a spool a dead
process left behind (``producers.delivery.recovery``) both drain a spool the same
way: read the next records oldest first, read each one's head (tenant, run, kind),
drop and ack a record that is not an event (it could never be delivered and would
block the spool), and publish the rest in order. What they do with the futures
differs (the sender settles them as they come, recovery waits for a window), so that
stays with them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka.structs import RecordMetadata

from ingest.errors import InvalidEventError
from ingest.events import EventEnvelope
from producers.delivery.kafka import EventPublisher
from producers.errors import PublishError
from producers.spool.directory import EventSpool, SpoolRecord, event_head

logger = logging.getLogger(__name__)

SPOOL_WINDOW = 2000
"""Spooled records in flight at once while a spool drains (the live sender also keeps
to its memory bound)."""


@dataclass
class SpoolSend:
    """What one ``send_spooled`` call did."""

    sent: list[tuple[asyncio.Future[RecordMetadata], EventEnvelope, SpoolRecord]] = field(
        default_factory=list
    )
    """Records handed to Kafka, oldest first, with their acknowledgement futures."""
    read: int = 0
    """Records read from the spool (sent, rejected, or left unsent by an error)."""
    rejected: int = 0
    """Unreadable records, acked and dropped."""
    error: PublishError | None = None
    """Why sending stopped before the last record read, if it did."""


async def send_spooled(
    spool: EventSpool,
    publisher: EventPublisher,
    limit: int,
    idle: bool,
    admit: Callable[[SpoolRecord], bool] | None = None,
) -> SpoolSend:
    """Publishes the next records of ``spool``, oldest first.

    Args:
        spool: the spool to read.
        publisher: a started publisher.
        limit: the most records to read.
        idle: nothing read before is still in flight; if nothing is left unread, the
            spool is rewound (records read but never acked are read again).
        admit: asked before each record is published; a False leaves it and the rest
            unsent (read again after the next rewind), e.g. to bound bytes in flight.
    """
    result = SpoolSend()
    records = spool.read(limit)
    if not records and idle and spool.events:
        spool.rewind()
        records = spool.read(limit)
    for record in records:
        if admit is not None and not admit(record):
            spool.rewind_to(record)
            break
        result.read += 1
        try:
            event = event_head(record.value)
        except InvalidEventError as exc:
            logger.error("dropped an unreadable spool record in %s: %s", spool.path, exc)
            spool.ack(record)
            result.rejected += 1
            continue
        try:
            future = await publisher.publish(event, record.value)
        except PublishError as exc:
            result.error = exc
            break
        result.sent.append((future, event, record))
    return result
