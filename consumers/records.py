"""From a consumed record to the event it carries, under the workers' rules.

The live worker and a replay both go through here, so a replay writes exactly
what the workers wrote.
"""

from __future__ import annotations

from ingest import codec
from ingest.errors import InvalidEventError
from ingest.events import Event
from ingest.kafka.records import KafkaRecord
from ingest.settings import KafkaSettings
from ingest.topics import tenant_of_key, tenant_of_topic

DEFAULT_MAX_RECORD_BYTES = 1024 * 1024


def decode_record(
    record: KafkaRecord, kafka: KafkaSettings, max_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Event:
    """The record's event.

    Raises:
        InvalidEventError: the value is over ``max_bytes``, is not an event of the
            contract, its key names another tenant than the event does (an event
            is written only to its key's tenant), or it came from another tenant's
            topic than the event names (the broker let its writer write only that
            tenant's topic: a tenant's credential cannot speak for another tenant).
    """
    size = len(record.value or b"")
    if size > max_bytes:
        raise InvalidEventError(
            f"record is {size} bytes; at most {max_bytes} (MATIH_CONSUMER_MAX_RECORD_BYTES)"
        )
    event = codec.decode(record.value)
    topic_tenant = tenant_of_topic(kafka, record.topic)
    if topic_tenant is not None and topic_tenant != event.tenant_id:
        raise InvalidEventError(
            f"event of tenant_id {event.tenant_id!r} came from tenant {topic_tenant!r}'s topic"
            f" {record.topic}; a tenant's topic carries only that tenant's events"
        )
    tenant = tenant_of_key(record.key)
    if tenant is not None and tenant != event.tenant_id:
        raise InvalidEventError(
            f"record key tenant {tenant!r} differs from the event's tenant_id {event.tenant_id!r};"
            " an event is written only to its key's tenant"
        )
    return event
