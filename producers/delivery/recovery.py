"""Recovery: delivering a spool that a process left behind (it exited or died with Kafka away).

``matih-ingest spool flush`` calls ``recover_spool`` for each spool whose owner is
gone. The spool's lock guarantees that a live process's spool is never taken: that
process drains it itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from producers.delivery.kafka import EventPublisher
from producers.delivery.unspool import SPOOL_WINDOW, send_spooled
from producers.settings import ProducerSettings
from producers.spool.directory import EventSpool

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpoolRecovery:
    """What one ``recover_spool`` did."""

    path: Path
    delivered_events: int
    delivered_points: int
    left_events: int
    rejected_events: int
    seconds: float

    @property
    def complete(self) -> bool:
        """Whether the spool was delivered entirely (and its directory removed)."""
        return self.left_events == 0


async def recover_spool(
    directory: Path, settings: ProducerSettings, within_s: float
) -> SpoolRecovery:
    """Publishes a left-behind spool to Kafka, oldest first, deleting what is acked.

    Events keep their ids, values and client timestamps, so anything a dead process
    had already delivered is written once by the idempotent sink.

    Args:
        directory: the spool directory (``<spool root>/<pid>-<hex>``).
        settings: where to publish (its topic and key strategy).
        within_s: the bound on the whole delivery; what is left then stays.

    Raises:
        SpoolBusyError: a live process holds the spool.
        KafkaUnavailableError: Kafka did not answer.
    """
    started = time.monotonic()
    deadline = started + within_s
    spool = EventSpool(directory, max_bytes=settings.spool_max_bytes)
    publisher = EventPublisher(settings)
    delivered = points = rejected = 0
    try:
        await publisher.start()  # creates missing topics too
        while spool.events and time.monotonic() < deadline:
            batch = await send_spooled(spool, publisher, SPOOL_WINDOW, idle=True)
            if not batch.read:
                break  # nothing readable is left, though records are counted: report them
            rejected += batch.rejected
            if batch.error is not None:
                logger.warning("%s; will retry", batch.error)
            if batch.sent:
                remaining = max(deadline - time.monotonic(), 0.1)
                await asyncio.wait([future for future, _, _ in batch.sent], timeout=remaining)
            failed = batch.error is not None
            for future, _, record in batch.sent:
                if future.done() and not future.cancelled() and future.exception() is None:
                    spool.ack(record)
                    delivered += 1
                    points += record.points
                else:
                    failed = True
            if failed:
                spool.rewind()
                await asyncio.sleep(0.2)
    finally:
        await publisher.abort(1.0)
        left = spool.events
        spool.close()
    return SpoolRecovery(directory, delivered, points, left, rejected, time.monotonic() - started)
