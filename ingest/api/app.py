"""The gateway application: ``create_app(settings)``.

One ``GatewayPublisher`` (Kafka) and one ``RunCatalog`` (MLflow reads) live as
long as the application; routes reach them through ``app.state``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse

from ingest.api import experiments, runs
from ingest.api.auth import TENANT_HEADER, KeyRing
from ingest.api.catalog import RunCatalog
from ingest.api.errors import install
from ingest.api.gateway import RunGateway
from ingest.api.limits import BodyLimit
from ingest.api.publishing import GatewayPublisher
from ingest.api.settings import ApiSettings
from ingest.asyncapi import asyncapi_document
from ingest.telemetry import metrics_asgi_app
from ingest.tracking.reader import RunReader
from producers import ProducerTelemetry

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
The spec's run endpoints, tenant-scoped. Writes go to Kafka and are answered once
Kafka acknowledged them, with a `consistency_token`; reads come from MLflow and,
given `?after=<token>`, first wait until the workers have written that far.

Every call names its tenant in `X-Tenant-ID` and authenticates with
`Authorization: Bearer <api key>` (the key must be the tenant's).
"""


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The gateway's FastAPI application.

    Args:
        settings: from the environment (``MATIH_API_*``) by default.
    """
    settings = settings or ApiSettings()
    producer_metrics = ProducerTelemetry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.open_mode:
            logger.warning(
                "OPEN MODE: the gateway authenticates no one; any caller acts for any"
                " tenant. For local development only."
            )
        publisher = GatewayPublisher(settings, producer_metrics)
        await publisher.start()
        catalog = RunCatalog(RunReader(settings.mlflow.tracking_uri), settings.run_cache_size)
        app.state.gateway = RunGateway(settings, publisher, catalog)
        app.state.publisher = publisher
        try:
            yield
        finally:
            await publisher.stop()

    app = FastAPI(
        title="matih-ingest gateway",
        version="1",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.keys = KeyRing(settings.api_keys, settings.open_mode)
    install(app, settings.retry_after_s)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(experiments.router)
    app.include_router(runs.router)
    app.mount("/metrics", metrics_asgi_app(producer_metrics.registry))
    document = asyncapi_document(settings.kafka)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        """The process serves (a liveness probe)."""
        return PlainTextResponse("ok\n")

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> PlainTextResponse:
        """Connected to Kafka: writes can be taken (a readiness probe)."""
        publisher = getattr(request.app.state, "publisher", None)
        if publisher is None or not publisher.connected:
            servers = settings.kafka.bootstrap_servers
            return PlainTextResponse(f"not connected to Kafka at {servers}\n", status_code=503)
        return PlainTextResponse("ok\n")

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi() -> dict[str, Any]:
        return document

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _require_tenant_header(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _require_tenant_header(schema: dict[str, Any]) -> None:
    """Documents X-Tenant-ID as required: it is, but it is checked after the API key,
    so that a call without a key is a 401 whatever else it lacks."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and parameter.get("name") == TENANT_HEADER:
                    parameter["required"] = True
                    parameter["schema"] = {
                        "type": "string",
                        "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                    }
