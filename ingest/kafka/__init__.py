"""Everything that talks to Kafka: building clients, translating their errors, topic
administration, and reading offset ranges. The contract (``ingest.topics``) names
topics and keys; this package does the I/O."""

from ingest.kafka.admin import (
    admin_client,
    check_read_access,
    check_write_access,
    ensure_topics,
    events_partitions,
    existing_partitions,
    topic_partitions,
)
from ingest.kafka.clients import (
    kafka_admin,
    kafka_consumer,
    kafka_producer,
    security_options,
    start,
    stop,
)
from ingest.kafka.errors import ACCESS_DENIALS, KAFKA_FAILURES, access_denied, bounded, kafka_errors
from ingest.kafka.ranges import OffsetRange, read_ranges
from ingest.kafka.records import BatchConsumer, ConsumedRecord, KafkaRecord

__all__ = [
    "ACCESS_DENIALS",
    "KAFKA_FAILURES",
    "BatchConsumer",
    "ConsumedRecord",
    "KafkaRecord",
    "OffsetRange",
    "access_denied",
    "admin_client",
    "bounded",
    "check_read_access",
    "check_write_access",
    "ensure_topics",
    "events_partitions",
    "existing_partitions",
    "kafka_admin",
    "kafka_consumer",
    "kafka_errors",
    "kafka_producer",
    "read_ranges",
    "security_options",
    "start",
    "stop",
    "topic_partitions",
]
