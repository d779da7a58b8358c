"""Serving the gateway with uvicorn: on its own, or inside another asyncio program."""

from __future__ import annotations

import uvicorn

from ingest.api.app import create_app
from ingest.api.compat import EmbeddedServer
from ingest.api.settings import ApiSettings


def build_server(settings: ApiSettings, embedded: bool = False) -> uvicorn.Server:
    """A uvicorn server for the gateway; one process, one event loop.

    Args:
        settings: the gateway's settings (host and port among them).
        embedded: leave SIGINT/SIGTERM to the caller (``matih-ingest up``).
    """
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        lifespan="on",
    )
    return EmbeddedServer(config) if embedded else uvicorn.Server(config)
