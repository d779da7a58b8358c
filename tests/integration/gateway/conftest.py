"""The REST gateway served by uvicorn on a free port, against the real broker and store.

``gateway`` runs with a worker (reads see writes); ``lone_gateway`` without one
(for errors that need no worker, and for the read timeout).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from ingest.api import ApiSettings
from ingest.settings import KafkaSettings, MlflowSettings
from tests.integration.gateway.support import serving
from tests.integration.support import WorkerThread

ACME_KEY = "key-acme-0001"
GLOBEX_KEY = "key-globex-0001"
KEYS = {SecretStr(ACME_KEY): "acme-corp", SecretStr(GLOBEX_KEY): "globex"}


def headers(tenant: str = "acme-corp", key: str | None = ACME_KEY) -> dict[str, str]:
    """The headers of a call of ``tenant`` with ``key``."""
    result = {"X-Tenant-ID": tenant}
    if key is not None:
        result["Authorization"] = f"Bearer {key}"
    return result


@pytest.fixture
def api_settings(kafka_settings: KafkaSettings, mlflow_settings: MlflowSettings) -> ApiSettings:
    """Two tenants with a key each; short bounds, so a failing wait fails fast."""
    return ApiSettings(
        kafka=kafka_settings,
        mlflow=mlflow_settings,
        port=0,
        api_keys=KEYS,
        read_wait_s=20.0,
        publish_timeout_s=10.0,
        max_body_bytes=256 * 1024,
    )


@pytest.fixture
def gateway(api_settings: ApiSettings, worker: WorkerThread) -> Iterator[httpx.Client]:
    """An HTTP client of a running gateway, with a worker writing MLflow."""
    del worker
    with serving(api_settings) as client:
        yield client


@pytest.fixture
def lone_gateway(api_settings: ApiSettings) -> Iterator[httpx.Client]:
    """An HTTP client of a running gateway, with no worker."""
    with serving(api_settings) as client:
        yield client
