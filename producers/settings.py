"""Settings of everything that publishes events (env prefix ``MATIH_PRODUCER_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.settings import DEFAULT_DATA_DIR, KafkaSettings, MlflowSettings


class ProducerSettings(BaseSettings):
    """How trainers and the gateway publish run events."""

    model_config = SettingsConfigDict(env_prefix="MATIH_PRODUCER_", frozen=True, extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    tenant_id: str | None = Field(
        default=None, description="The tenant of runs whose RunConfig names none."
    )
    client_id: str = "matih-ingest-producer"
    create_topics: bool = Field(
        default=True, description="Create the topics on connect if missing (needs admin rights)."
    )
    linger_ms: int = Field(default=20, ge=0, description="How long points wait to share a batch.")
    compression: Literal["lz4", "zstd", "gzip", "none"] = "lz4"
    max_batch_bytes: int = Field(default=512 * 1024, gt=0)
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Bound on connecting.")
    delivery_timeout_s: float = Field(
        default=30.0, gt=0, description="Bound on one record's delivery before it counts as failed."
    )
    flush_timeout_s: float = Field(
        default=15.0, ge=0, description="How long ending a run waits for its events to be acked."
    )
    sender: Literal["process", "thread"] = Field(
        default="process",
        description="Where the sender runs: a process of its own, so a logging call only"
        " writes to shared memory and never pauses for the sender's GIL or garbage"
        " collector (p99.9 tens of microseconds where it has a core), or a thread of the"
        " trainer's process (no second process; hundreds of microseconds at p99.9 under"
        " load).",
    )
    memory_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1024 * 1024,
        description="Bound on what the SDK holds in memory (logging calls, encoded events,"
        " records in flight); past it the oldest events spill to the spool on disk.",
    )
    artifact_wait_s: float = Field(
        default=600.0,
        ge=0,
        description="How long ending a run waits for its artifacts to be stored; what is not"
        " stored then is reported.",
    )
    read_wait_s: float = Field(
        default=30.0, ge=0, description="How long a read waits for the workers to catch up."
    )
    spool_dir: Path = Field(
        default=DEFAULT_DATA_DIR / "spool",
        description="Where events wait on disk while Kafka is out of reach (a folder per process).",
    )
    spool_max_bytes: int = Field(
        default=256 * 1024 * 1024, gt=0, description="Bound on one process's spool on disk."
    )
    spool_full_wait_s: float = Field(
        default=1.0, ge=0, description="How long a full spool waits for room; then old points drop."
    )
    spool_fsync: bool = Field(
        default=True,
        description="fsync each full spool segment, the one being written at least once a second"
        " and at close.",
    )
