"""Topic names and record keys: the one place that knows them.

Pure: the Kafka I/O that uses them (creating topics, listing partitions) lives in
``ingest.kafka``.
"""

from __future__ import annotations

from ingest.events import EventEnvelope
from ingest.settings import KafkaSettings, KeyStrategy

DEAD_LETTER_SUFFIX = ".dlq"
_KEY_SEPARATOR = "/"


def events_topic(settings: KafkaSettings) -> str:
    """The topic all run events go to (one topic keeps each run's events in order)."""
    return settings.topic


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
