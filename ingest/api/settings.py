"""Settings of the REST gateway (env prefix ``MATIH_API_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.settings import KafkaSettings, MlflowSettings
from ingest.validation import check_tenant_id


class ApiSettings(BaseSettings):
    """Where the gateway listens, who may call it, and how long it waits.

    API keys map each key to the one tenant it acts for, e.g.
    ``MATIH_API_API_KEYS='{"k-acme-1": "acme-corp", "k-globex": "globex"}'``. Keys are
    secrets: they are never logged or shown. ``open_mode`` turns authentication off
    (any caller acts for the tenant its ``X-Tenant-ID`` names): for local
    development only, off by default.
    """

    model_config = SettingsConfigDict(env_prefix="MATIH_API_", frozen=True, extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to listen on.")
    api_keys: dict[SecretStr, str] = Field(
        default_factory=dict, description="API key -> the tenant it acts for."
    )
    open_mode: bool = Field(
        default=False, description="No authentication: for local development only."
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest request body accepted (413 beyond)."
    )
    read_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="How long a read with ?after= waits for the workers (504 beyond).",
    )
    publish_timeout_s: float = Field(
        default=5.0, gt=0, description="How long a write waits for Kafka's acknowledgement."
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, description="Bound on connecting to Kafka.")
    retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After of a 503 while Kafka or MLflow is unavailable."
    )
    run_cache_size: int = Field(
        default=100_000, gt=0, description="Runs whose tenant and experiment are kept in memory."
    )

    @field_validator("api_keys")
    @classmethod
    def _tenants(cls, value: dict[SecretStr, str]) -> dict[SecretStr, str]:
        for tenant in value.values():
            check_tenant_id(tenant)
        return value
