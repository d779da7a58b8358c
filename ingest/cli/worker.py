"""``matih-ingest worker``: consume run events and write them to MLflow until stopped."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from consumers import ConsumerSettings, MlflowSink, build_worker
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
    app = build_worker(settings, MlflowSink(settings.mlflow))
    asyncio.run(app.run())
