"""Topic names, record keys, and topic creation: the one place that knows them.

Topics are created explicitly with the configured partition count; a broker that
auto-creates would give them one partition and serialize every tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import TopicPartition

from ingest.errors import KafkaUnavailableError
from ingest.events import EventEnvelope
from ingest.replication import topic_layout
from ingest.settings import KafkaSettings, KeyStrategy

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEAD_LETTER_SUFFIX = ".dlq"


def events_topic(settings: KafkaSettings) -> str:
    """The topic all run events go to (one topic keeps each run's events in order)."""
    return settings.topic


def dead_letter_topic(settings: KafkaSettings) -> str:
    """The topic where events that can never be written are set aside, with the reason."""
    return settings.topic + DEAD_LETTER_SUFFIX


def record_key(event: EventEnvelope, strategy: KeyStrategy) -> bytes:
    """The record key: the tenant id, or tenant and run for a hot tenant."""
    if strategy is KeyStrategy.RUN:
        return f"{event.tenant_id}/{event.run_id}".encode()
    return event.tenant_id.encode()


async def bounded(
    awaitable: Awaitable[T], settings: KafkaSettings, timeout: float | None = None, what: str = ""
) -> T:
    """Awaits one Kafka call, at most ``timeout`` s (the request timeout by default);
    ``what`` names the call in the error.

    Raises:
        KafkaUnavailableError: the call failed or did not finish in time.
    """
    limit = settings.request_timeout_s if timeout is None else timeout
    try:
        return await asyncio.wait_for(awaitable, limit)
    except (TimeoutError, KafkaError, OSError) as exc:
        doing = f" ({what})" if what else ""
        raise KafkaUnavailableError(
            f"Kafka at {settings.bootstrap_servers} did not answer{doing} within {limit:g}s"
            f" ({exc!r}); is the broker running?"
        ) from exc


@asynccontextmanager
async def admin_client(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A connected admin client; every failure inside becomes ``KafkaUnavailableError``.

    Wrap each call made with it in ``asyncio.wait_for(..., settings.request_timeout_s)``.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(settings.request_timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), settings.request_timeout_s)
        yield admin
    except (TimeoutError, KafkaError, OSError) as exc:
        raise KafkaUnavailableError(
            f"Kafka at {settings.bootstrap_servers} did not answer within"
            f" {settings.request_timeout_s:g}s ({exc!r}); is the broker running?"
        ) from exc
    finally:
        await admin.close()


async def ensure_topics(settings: KafkaSettings) -> None:
    """Creates the events and dead-letter topics if they do not exist yet, replicated as
    the cluster's size and the settings say (``ingest.replication``).

    A broker that just died stays in the cluster's metadata until the controller fences
    it (seconds), and a call sent to it fails at once: such failures are tried again,
    through another broker, for up to three request timeouts.

    Raises:
        KafkaUnavailableError: the cluster did not answer in that time.
        ConfigurationError: the replication asked for cannot work on this cluster.
    """
    deadline = time.monotonic() + 3 * settings.request_timeout_s
    while True:
        try:
            await _ensure_topics_once(settings)
            return
        except KafkaUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise
            logger.info("creating topics: %s; trying again", exc)
            await asyncio.sleep(0.5)


async def _ensure_topics_once(settings: KafkaSettings) -> None:
    timeout = settings.request_timeout_s
    async with admin_client(settings) as admin:
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
        layout = topic_layout(settings, len(cluster["brokers"]))
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout))
        wanted = [
            NewTopic(
                name,
                layout.partitions,
                layout.replication_factor,
                topic_configs=layout.configs(),
            )
            for name in (events_topic(settings), dead_letter_topic(settings))
            if name not in existing
        ]
        if wanted:
            # Another process may create them between our look and our create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await asyncio.wait_for(admin.create_topics(wanted), timeout)
            logger.info("created topics %s", ", ".join(t.name for t in wanted))


async def topic_partitions(settings: KafkaSettings, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``, in order; empty if it does not exist."""
    async with admin_client(settings) as admin:
        (described,) = await asyncio.wait_for(
            admin.describe_topics([topic]), settings.request_timeout_s
        )
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])
