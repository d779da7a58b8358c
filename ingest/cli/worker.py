"""``matih-ingest worker``: consume run events and write them to MLflow until stopped."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from consumers import ConsumerSettings, MlflowSink, build_worker
from consumers.health import store_reachable
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
from ingest.errors import ConfigurationError, IngestError


def worker(
    *,
    bootstrap_servers: BootstrapOption = None,
    tracking_uri: TrackingUriOption = None,
    topic: TopicOption = None,
    group: GroupOption = None,
    verbose: VerboseOption = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus /metrics on this port; MATIH_METRICS_PORT."),
    ] = None,
) -> None:
    """Run a worker: batches from Kafka into MLflow, committing after each write.

    Stops cleanly on Ctrl-C or SIGTERM. Start several for more throughput: the
    group shares the topic's partitions among them.
    """
    configure_logging(verbose)
    settings = ConsumerSettings(
        kafka=kafka_settings(bootstrap_servers, topic, group), mlflow=mlflow_settings(tracking_uri)
    )
    if metrics_port is not None:
        metrics = settings.metrics.model_copy(update={"port": metrics_port})
        settings = settings.model_copy(update={"metrics": metrics})
    # Misconfiguration ends the worker with one line and exit code 2, before anything
    # else runs: an orchestrator's restart backoff then spaces out the retries.
    try:
        problem = store_reachable(settings.mlflow)
        if problem is not None:
            raise ConfigurationError(f"{problem}; check MATIH_MLFLOW_TRACKING_URI")
        app = build_worker(settings, MlflowSink(settings.mlflow))
        asyncio.run(app.run())
    except IngestError as exc:
        typer.echo(f"worker cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
