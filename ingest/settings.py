"""Settings shared by every deployable: where Kafka and MLflow are.

Each deployable has its own settings class (``ProducerSettings``,
``ConsumerSettings``) that nests these; only settings modules read the environment.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".data")


class KeyStrategy(StrEnum):
    """How records are keyed, and so partitioned."""

    TENANT = "tenant"
    """All of a tenant's events on one partition, in order (the default)."""
    RUN = "run"
    """Per run: spreads a hot tenant over partitions; each run stays ordered."""


class WritePath(StrEnum):
    """How a worker writes to MLflow."""

    AUTO = "auto"
    """Set-based SQL straight into MLflow's schema on a sqlite or PostgreSQL store whose
    schema revision the worker was tested against; MLflow's store API otherwise."""
    API = "api"
    """Always through MLflow's store API (one ORM write per item)."""


class KafkaSettings(BaseSettings):
    """Where the events topic is and how it is laid out (env prefix ``MATIH_KAFKA_``)."""

    model_config = SettingsConfigDict(env_prefix="MATIH_KAFKA_", frozen=True, extra="ignore")

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="host:port[,host:port]")
    topic: str = Field(default="matih.runs.events", description="The run events topic.")
    partitions: int = Field(default=6, ge=1, description="Partitions of a topic created here.")
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Replicas of each topic created here; unset: 3 on a cluster of at least"
        " 3 brokers, else 1.",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="Replicas that must have a record before Kafka acknowledges it (with"
        " acks=all); unset: 2 on a cluster of at least 3 brokers, else 1.",
    )
    retention_hours: float = Field(
        default=168.0,
        gt=0,
        description="How long topics created here keep events: the window that replay,"
        " re-drive and a store rebuild can reach back to.",
    )
    key_strategy: KeyStrategy = KeyStrategy.TENANT
    consumer_group: str = Field(
        default="matih-ingest-mlflow", description="The group of the workers that write MLflow."
    )
    request_timeout_s: float = Field(default=10.0, gt=0, description="Bound on each admin call.")

    @property
    def servers(self) -> list[str]:
        """The bootstrap servers one by one (FastStream takes a single string as one
        address, so ``a:9092,b:9092`` must be split before it reaches it)."""
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]


class MlflowSettings(BaseSettings):
    """The MLflow store (env prefix ``MATIH_MLFLOW_``)."""

    model_config = SettingsConfigDict(env_prefix="MATIH_MLFLOW_", frozen=True, extra="ignore")

    tracking_uri: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR / 'mlflow' / 'mlflow.db'}",
        description="A sqlite:/// or postgresql:// store, or an http(s):// MLflow server.",
    )
    artifact_root: str = Field(
        default=str(DEFAULT_DATA_DIR / "mlflow" / "artifacts"),
        description="Where experiments created here keep artifacts.",
    )
    write_path: WritePath = Field(
        default=WritePath.AUTO, description="auto: bulk SQL where the store allows; api: never."
    )


class MetricsSettings(BaseSettings):
    """Prometheus ``/metrics`` of a deployable (env prefix ``MATIH_METRICS_``)."""

    model_config = SettingsConfigDict(env_prefix="MATIH_METRICS_", frozen=True, extra="ignore")

    port: int | None = Field(
        default=None, ge=0, le=65535, description="Port of /metrics; unset: none, 0: any free port."
    )
    host: str = Field(default="127.0.0.1", description="Interface /metrics listens on.")
    lag_interval_s: float = Field(
        default=15.0, gt=0, description="How often a worker samples its group's lag for /metrics."
    )
