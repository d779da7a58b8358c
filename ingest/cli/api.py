"""``matih-ingest api``: serve the REST gateway until stopped."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ingest.api import ApiSettings, build_server
from ingest.cli.options import (
    BootstrapOption,
    GroupOption,
    TopicOption,
    TrackingUriOption,
    VerboseOption,
    configure_logging,
    kafka_settings,
    mlflow_settings,
)

OpenOption = Annotated[
    bool,
    typer.Option(
        "--open",
        help="Open mode: no API keys, any caller acts for any tenant. Local development only;"
        " MATIH_API_OPEN_MODE.",
    ),
]


def api(
    *,
    bootstrap_servers: BootstrapOption = None,
    tracking_uri: TrackingUriOption = None,
    topic: TopicOption = None,
    group: GroupOption = None,
    host: Annotated[str | None, typer.Option(help="Interface; MATIH_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; MATIH_API_PORT.")] = None,
    open_mode: OpenOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Serve the REST gateway: the spec's run endpoints, writing through Kafka.

    API keys come from MATIH_API_API_KEYS ('{"<key>": "<tenant>", ...}'). OpenAPI
    docs are at /docs, the topics' AsyncAPI document at /asyncapi.json.
    """
    configure_logging(verbose)
    settings = api_settings(
        kafka=kafka_settings(bootstrap_servers, topic, group),
        mlflow=mlflow_settings(tracking_uri),
        host=host,
        port=port,
        open_mode=open_mode or None,
    )
    if not settings.open_mode and not settings.api_keys:
        typer.echo(
            "no API keys configured (MATIH_API_API_KEYS): every call will be refused with 401;"
            " use --open for local development",
            err=True,
        )
    build_server(settings).run()


def api_settings(**overrides: Any) -> ApiSettings:
    """Gateway settings from the environment, with the given values taking precedence."""
    return ApiSettings(**{key: value for key, value in overrides.items() if value is not None})
