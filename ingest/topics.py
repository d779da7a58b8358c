"""Topic names and record keys: the one place that knows them.

Pure: the Kafka I/O that uses them (creating topics, listing partitions) lives in
``ingest.kafka``.
"""

from __future__ import annotations

import re

from ingest.events import EventEnvelope
from ingest.settings import KafkaSettings, KeyStrategy

DEAD_LETTER_SUFFIX = ".dlq"
TENANT_INFIX = ".tenant."
"""Between the events topic and a tenant id in a tenant's topic name. A tenant id never
holds it twice over an exact name, and ACLs are LITERAL on each tenant's exact topic
(a prefixed ACL on ``...tenant.acme`` would also match ``...tenant.acme-corp``)."""
_KEY_SEPARATOR = "/"
_TENANT_ID = "[A-Za-z0-9][A-Za-z0-9._-]*"


def events_topic(settings: KafkaSettings) -> str:
    """The topic all run events go to (one topic keeps each run's events in order)."""
    return settings.topic


def tenant_topic(settings: KafkaSettings, tenant_id: str) -> str:
    """The topic of one tenant's events, which only that tenant's principal (and the
    trusted gateway) may write."""
    return f"{settings.topic}{TENANT_INFIX}{tenant_id}"


def publish_topic(settings: KafkaSettings, tenant_id: str) -> str:
    """Where a producer sends a tenant's events: the tenant's own topic with
    ``tenant_topics`` set, else the shared events topic."""
    return tenant_topic(settings, tenant_id) if settings.tenant_topics else events_topic(settings)


def events_pattern(settings: KafkaSettings) -> str:
    """The regular expression workers subscribe with: the shared events topic and every
    tenant topic, present and future (never the dead-letter topic)."""
    return f"^{re.escape(settings.topic)}({re.escape(TENANT_INFIX)}{_TENANT_ID})?$"


def is_events_topic(settings: KafkaSettings, topic: str) -> bool:
    """Whether ``topic`` is the shared events topic or a tenant topic."""
    return re.fullmatch(events_pattern(settings), topic) is not None


def tenant_of_topic(settings: KafkaSettings, topic: str) -> str | None:
    """The tenant whose topic ``topic`` is; None for the shared events topic."""
    prefix = settings.topic + TENANT_INFIX
    return topic[len(prefix) :] if topic.startswith(prefix) else None


def dead_letter_topic(settings: KafkaSettings) -> str:
    """The topic where events that can never be written are set aside, with the reason."""
    return settings.topic + DEAD_LETTER_SUFFIX


def record_key(event: EventEnvelope, strategy: KeyStrategy) -> bytes:
    """The record key: the tenant id, or tenant and run for a hot tenant."""
    if strategy is KeyStrategy.RUN:
        return f"{event.tenant_id}{_KEY_SEPARATOR}{event.run_id}".encode()
    return event.tenant_id.encode()


def tenant_of_key(key: bytes | None) -> str | None:
    """The tenant a record key names (``tenant`` or ``tenant/run``); None without a key.

    A tenant id never holds the separator, so this reads keys of either strategy.
    """
    if not key:
        return None
    return key.decode(errors="replace").split(_KEY_SEPARATOR, 1)[0]
