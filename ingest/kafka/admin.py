"""Topic administration: create the project's topics, and list partitions.

Topics are created explicitly with the configured partition count; a broker that
auto-creates would give them one partition and serialize every tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, TopicAuthorizationFailedError
from aiokafka.structs import TopicPartition

from ingest.errors import KafkaUnavailableError
from ingest.kafka.clients import kafka_admin, kafka_producer, start, stop
from ingest.kafka.errors import access_denied, bounded
from ingest.replication import topic_layout
from ingest.settings import KafkaSettings
from ingest.topics import dead_letter_topic, events_topic, is_events_topic, publish_topic

__all__ = [
    "admin_client",
    "check_read_access",
    "check_write_access",
    "ensure_topics",
    "events_partitions",
    "existing_partitions",
    "topic_partitions",
]

logger = logging.getLogger(__name__)


@asynccontextmanager
async def admin_client(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A connected admin client, closed on leaving; bound each call with ``bounded``.

    Raises:
        KafkaUnavailableError: Kafka did not answer within the request timeout.
    """
    admin = await start(kafka_admin(settings), settings)
    try:
        yield admin
    finally:
        await stop(admin, settings.request_timeout_s)


async def ensure_topics(settings: KafkaSettings, topics: Iterable[str] = ()) -> None:
    """Creates ``topics`` (by default the events and dead-letter topics) if they do not
    exist yet, replicated as the cluster's size and the settings say
    (``ingest.replication``).

    A broker that just died stays in the cluster's metadata until the controller fences
    it (seconds), and a call sent to it fails at once: such failures are tried again,
    through another broker, for up to three request timeouts.

    Raises:
        KafkaUnavailableError: the cluster did not answer in that time.
        ConfigurationError: the replication asked for cannot work on this cluster.
    """
    names = list(topics) or [events_topic(settings), dead_letter_topic(settings)]
    deadline = time.monotonic() + 3 * settings.request_timeout_s
    while True:
        try:
            await _ensure_topics_once(settings, names)
            return
        except KafkaUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise
            logger.info("creating topics: %s; trying again", exc)
            await asyncio.sleep(0.5)


async def _ensure_topics_once(settings: KafkaSettings, names: list[str]) -> None:
    async with admin_client(settings) as admin:
        cluster = await bounded(admin.describe_cluster(), settings, "describing the cluster")
        layout = topic_layout(settings, len(cluster["brokers"]))
        existing = set(await bounded(admin.list_topics(), settings, "listing topics"))
        wanted = [
            NewTopic(
                name,
                layout.partitions,
                layout.replication_factor,
                topic_configs=layout.configs(),
            )
            for name in names
            if name not in existing
        ]
        if events_topic(settings) in existing:
            await _check_partitions(admin, settings, layout.partitions)
        if wanted:
            # Another process may create them between our look and our create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await bounded(admin.create_topics(wanted), settings, "creating topics")
            await _until_described(admin, settings, [t.name for t in wanted])
            logger.info("created topics %s", ", ".join(t.name for t in wanted))


async def _until_described(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, names: list[str]
) -> None:
    """Waits, for at most the request timeout, until the broker answering describes the
    new topics with their partitions: a create is acknowledged by the controller before
    every broker's metadata has the topic, and a caller's next look (listing partitions,
    the lag) would otherwise find it empty."""
    deadline = time.monotonic() + settings.request_timeout_s
    while time.monotonic() < deadline:
        described = await bounded(admin.describe_topics(names), settings, "describing topics")
        if all(not t["error_code"] and t["partitions"] for t in described):
            return
        await asyncio.sleep(0.1)


async def _check_partitions(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, configured: int
) -> None:
    """Warns, once at start, when the events topic has fewer partitions than configured:
    the workers beyond its partition count would stand idle. Partitions are never added
    here, since that moves tenants to other partitions while their events are in flight."""
    topic = events_topic(settings)
    have = len(await _partitions_of(admin, settings, topic))
    if have < configured:
        logger.warning(
            "topic %s has %d partitions, fewer than the %d configured"
            " (MATIH_KAFKA_PARTITIONS): at most %d workers share its load, any more stand"
            " by; add partitions (kafka-topics --alter) only with the producers stopped and"
            " the topic drained, as it moves tenants to other partitions",
            topic,
            have,
            configured,
            have,
        )


async def topic_partitions(settings: KafkaSettings, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``, in order; empty if it does not exist.

    Raises:
        KafkaUnavailableError: Kafka did not answer within the request timeout.
    """
    async with admin_client(settings) as admin:
        return await _partitions_of(admin, settings, topic)


async def _partitions_of(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, topic: str
) -> list[TopicPartition]:
    (described,) = await bounded(
        admin.describe_topics([topic]), settings, f"describing topic {topic!r}"
    )
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


async def existing_partitions(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, topics: Iterable[str]
) -> set[TopicPartition]:
    """Every partition of those of ``topics`` that exist; a missing topic has none. The
    events topic among ``topics`` stands for every tenant topic too.

    Raises:
        KafkaUnavailableError: Kafka did not answer within the request timeout.
    """
    wanted = set(topics)
    if not wanted:
        return set()
    # All topics' metadata, not the named ones': a metadata request that names a
    # topic asks the broker to create it, and looking must never create anything.
    described = await bounded(admin.describe_topics(), settings, "describing topics")
    tenants = events_topic(settings) in wanted
    return {
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if (t["topic"] in wanted or (tenants and is_events_topic(settings, t["topic"])))
        and not t["error_code"]
        for p in t["partitions"]
    }


async def events_partitions(settings: KafkaSettings) -> list[TopicPartition]:
    """Every partition of the shared events topic and of every tenant topic, in order.

    Raises:
        KafkaUnavailableError: Kafka did not answer within the request timeout.
    """
    async with admin_client(settings) as admin:
        found = await existing_partitions(admin, settings, [events_topic(settings)])
    return sorted(found)


async def check_write_access(settings: KafkaSettings, tenant_id: str) -> None:
    """Checks, before a trainer logs anything, that the brokers take this client's
    credential and let its principal see the topic it would write the tenant's events to.

    Raises:
        KafkaAccessDeniedError: the credential is refused, or no ACL gives the
            principal that topic (another tenant's, or a tenant never added).
        KafkaUnavailableError: Kafka did not answer (nothing is known yet).
    """
    topic = publish_topic(settings, tenant_id)
    producer = await start(kafka_producer(settings), settings)
    try:
        await bounded(
            producer.partitions_for(topic), settings, f"writing tenant {tenant_id!r}'s events"
        )
    finally:
        await stop(producer, settings.request_timeout_s)


async def check_read_access(settings: KafkaSettings, group: str) -> None:
    """Checks, as a worker starts, that its principal may see the events topic and use
    its consumer group: without, aiokafka would only log every refused metadata request
    while the worker looked alive. (Kafka gives READ and DESCRIBE together in the ACLs
    ``tenants worker`` sets; DESCRIBE is what a client can ask about without reading.)

    Raises:
        KafkaAccessDeniedError: no ACL gives the principal the topic, or the group.
        KafkaUnavailableError: Kafka did not answer (nothing is known yet).
    """
    topic = events_topic(settings)
    reading = f"reading topic {topic!r}"
    async with admin_client(settings) as admin:
        (described,) = await bounded(admin.describe_topics([topic]), settings, reading)
        if described["error_code"] == TopicAuthorizationFailedError.errno:
            raise access_denied(settings, reading, TopicAuthorizationFailedError(topic))
        # A group coordinator not elected yet (a new cluster) proves nothing either way:
        # the group's own join waits for it.
        with contextlib.suppress(KafkaUnavailableError):
            await bounded(
                admin.list_consumer_group_offsets(group),
                settings,
                f"using consumer group {group!r}",
            )
