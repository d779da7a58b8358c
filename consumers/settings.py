"""Settings of the MLflow-writing workers (env prefix ``MATIH_CONSUMER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.records import DEFAULT_MAX_RECORD_BYTES
from ingest.settings import KafkaSettings, MetricsSettings, MlflowSettings


class ConsumerSettings(BaseSettings):
    """How a worker reads the events topic and writes MLflow."""

    model_config = SettingsConfigDict(env_prefix="MATIH_CONSUMER_", frozen=True, extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    client_id: str = "matih-ingest-worker"
    group_instance_id: str | None = Field(
        default=None,
        description="Static group membership (e.g. the pod name): a worker that restarts"
        " within the session timeout gets its partitions back without a rebalance.",
    )
    max_records: int = Field(default=500, gt=0, description="Most records fetched at once.")
    max_batch_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Most bytes of records written in one transaction and committed together"
        " (about 12,000 metric points, a fraction of a second): what a kill or a rebalance"
        " redoes.",
    )
    max_partition_fetch_bytes: int = Field(
        default=8 * 1024 * 1024,
        gt=0,
        description="Most bytes fetched from one partition at once: a backlog comes in"
        " several chunks per fetch, so decoding one overlaps writing the one before.",
    )
    batch_timeout_ms: int = Field(
        default=200, gt=0, description="How long a batch waits to fill before it is written."
    )
    max_record_bytes: int = Field(
        default=DEFAULT_MAX_RECORD_BYTES,
        gt=0,
        description="Larger records are dead-lettered unread.",
    )
    topic_refresh_ms: int = Field(
        default=30_000,
        gt=0,
        description="How often a worker re-reads the cluster's topics: a new tenant's topic"
        " is read within this time.",
    )
    retry_backoff_s: float = Field(
        default=0.5, gt=0, description="First wait after a failed write."
    )
    retry_backoff_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between tries."
    )
