"""Settings shared by every deployable: where Kafka and MLflow are.

Each deployable has its own settings class (``ProducerSettings``,
``ConsumerSettings``) that nests these; only settings modules read the environment.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
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


class SecurityProtocol(StrEnum):
    """How a client talks to the brokers (Kafka's ``security.protocol``)."""

    PLAINTEXT = "PLAINTEXT"
    """No encryption, no identity: local development only."""
    SSL = "SSL"
    """TLS, no SASL identity."""
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    """A SASL identity without encryption (a password travels hashed with SCRAM)."""
    SASL_SSL = "SASL_SSL"
    """A SASL identity over TLS: production."""


class SaslMechanism(StrEnum):
    """How a SASL client proves its identity."""

    SCRAM_SHA_512 = "SCRAM-SHA-512"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    PLAIN = "PLAIN"


class KafkaSettings(BaseSettings):
    """Where the events topic is, how it is laid out, and who this client is to the
    brokers (env prefix ``MATIH_KAFKA_``)."""

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
    tenant_topics: bool = Field(
        default=False,
        description="Producers write each tenant's events to the tenant's own topic"
        " (``<topic>.tenant.<tenant>``), where the broker's ACLs decide who may write;"
        " workers read the shared topic and every tenant topic either way.",
    )
    security_protocol: SecurityProtocol = Field(
        default=SecurityProtocol.PLAINTEXT,
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: SaslMechanism = Field(
        default=SaslMechanism.SCRAM_SHA_512, description="The SASL mechanism of SASL_* protocols."
    )
    username: str | None = Field(
        default=None, description="The SASL principal (a tenant's, a worker's, the gateway's)."
    )
    password: SecretStr | None = Field(
        default=None, description="The SASL password; never logged or shown."
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed the brokers' certificates (SSL and"
        " SASL_SSL); unset: the system's trusted CAs.",
    )

    tools_classpath: str = Field(
        default=".cache/kafka/libs/*",
        description="Kafka's own jars (java classpath), for the admin calls aiokafka's admin"
        " client lacks: SCRAM credentials, ACLs, client quotas (``matih-ingest tenants``).",
    )

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.sasl and (not self.username or self.password is None):
            raise ValueError(
                f"MATIH_KAFKA_USERNAME and MATIH_KAFKA_PASSWORD are required with"
                f" MATIH_KAFKA_SECURITY_PROTOCOL={self.security_protocol.value}"
            )
        return self

    @property
    def sasl(self) -> bool:
        """Whether the client authenticates with SASL."""
        return self.security_protocol in (
            SecurityProtocol.SASL_PLAINTEXT,
            SecurityProtocol.SASL_SSL,
        )

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted."""
        return self.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

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
