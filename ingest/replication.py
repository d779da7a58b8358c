"""How the topics are laid out on a cluster: replication factor, min.insync.replicas
and retention, from the settings and the number of brokers (a rule of the contract).

A cluster of at least 3 brokers gets 3 replicas with ``min.insync.replicas=2``: any one
broker may be lost or restarted without losing an acknowledged event or refusing new
ones. A smaller cluster (local development) gets 1 and 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.errors import ConfigurationError
from ingest.settings import KafkaSettings

CLUSTER_BROKERS = 3
"""From this many brokers on, topics are replicated by default."""
CLUSTER_REPLICATION_FACTOR = 3
CLUSTER_MIN_INSYNC_REPLICAS = 2


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """What a topic is created with."""

    partitions: int
    replication_factor: int
    min_insync_replicas: int
    retention_ms: int

    def configs(self) -> dict[str, str]:
        """The topic-level configs Kafka takes at creation."""
        return {
            "min.insync.replicas": str(self.min_insync_replicas),
            "retention.ms": str(self.retention_ms),
        }


def topic_layout(settings: KafkaSettings, brokers: int) -> TopicLayout:
    """The layout of topics created on a cluster of ``brokers`` brokers.

    Raises:
        ConfigurationError: the replication factor is larger than the cluster, or
            min.insync.replicas larger than the replication factor (Kafka would refuse
            every acknowledged write).
    """
    clustered = brokers >= CLUSTER_BROKERS
    replication = settings.replication_factor or (CLUSTER_REPLICATION_FACTOR if clustered else 1)
    min_isr = settings.min_insync_replicas or (CLUSTER_MIN_INSYNC_REPLICAS if clustered else 1)
    if replication > brokers:
        raise ConfigurationError(
            f"MATIH_KAFKA_REPLICATION_FACTOR={replication} but the cluster at"
            f" {settings.bootstrap_servers} has {brokers} broker(s): set it to {brokers} or less"
        )
    if min_isr > replication:
        raise ConfigurationError(
            f"MATIH_KAFKA_MIN_INSYNC_REPLICAS={min_isr} is larger than the replication factor"
            f" {replication}: no write could ever be acknowledged; set it to {replication} or less"
        )
    return TopicLayout(
        partitions=settings.partitions,
        replication_factor=replication,
        min_insync_replicas=min_isr,
        retention_ms=int(settings.retention_hours * 3_600_000),
    )
