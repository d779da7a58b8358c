"""Recovery: delivering a spool that a process left behind (it exited or died with Kafka away).

``matih-ingest spool flush`` calls ``recover_spool`` for each spool whose owner is
gone. The spool's lock guarantees that a live process's spool is never taken: that
process drains it itself.

A spool's ``owner.json`` says where its events were going (``spool_owner``): the
brokers, the events topic, the key strategy and whether each tenant's events go to
the tenant's own topic. ``recovery_settings`` turns that back into settings, so a
spool written by a trainer with tenant topics is delivered to them, where the
tenant's credential may write, and never to the shared topic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.settings import KafkaSettings
from producers.delivery.kafka import EventPublisher
from producers.delivery.unspool import SPOOL_WINDOW, send_spooled
from producers.settings import ProducerSettings
from producers.spool.directory import EventSpool

logger = logging.getLogger(__name__)


def spool_owner(settings: ProducerSettings) -> dict[str, Any]:
    """What a new spool records of where its events go (never a credential)."""
    return {
        "bootstrap_servers": settings.kafka.bootstrap_servers,
        "topic": settings.kafka.topic,
        "key_strategy": settings.kafka.key_strategy.value,
        "tenant_topics": settings.kafka.tenant_topics,
    }


def recovery_settings(
    owner: dict[str, Any], bootstrap_servers: str | None = None, topic: str | None = None
) -> ProducerSettings:
    """Settings that deliver a spool where its owner was delivering it.

    ``bootstrap_servers`` and ``topic``, when given, win over the owner's. Whether
    events go to the tenants' own topics is always the owner's: the same events on
    the shared topic would be refused to a tenant's credential, or written beside
    the tenant's topic under a trusted one. A spool whose owner did not record it
    (written before it was recorded) takes it from the environment, as then. The
    credential is always the environment's (``MATIH_KAFKA_*``): a spool holds none.
    """
    overrides: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers or owner.get("bootstrap_servers"),
        "topic": topic or owner.get("topic"),
        "key_strategy": owner.get("key_strategy"),
        "tenant_topics": owner.get("tenant_topics"),
    }
    kafka = KafkaSettings(**{key: value for key, value in overrides.items() if value is not None})
    return ProducerSettings(kafka=kafka, client_id=f"matih-ingest-spool-flush-{os.getpid()}")


@dataclass(frozen=True)
class SpoolRecovery:
    """What one ``recover_spool`` did."""

    path: Path
    delivered_events: int
    delivered_points: int
    left_events: int
    rejected_events: int
    seconds: float
    topics: tuple[str, ...] = ()
    """The topics Kafka acknowledged the delivered events on, sorted."""

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
        settings: where to publish (``recovery_settings`` of the spool's owner).
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
    topics: set[str] = set()
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
                    topics.add(future.result().topic)
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
    seconds = time.monotonic() - started
    return SpoolRecovery(
        directory, delivered, points, left, rejected, seconds, tuple(sorted(topics))
    )
