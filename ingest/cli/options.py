"""Options the commands share, and how they become settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from ingest.errors import IngestError
from ingest.kafka.logs import quiet_harmless_kafka_logs
from ingest.settings import KafkaSettings, MlflowSettings

BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers", "-b", help="Kafka host:port; MATIH_KAFKA_BOOTSTRAP_SERVERS."
    ),
]
TrackingUriOption = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow store or server; MATIH_MLFLOW_TRACKING_URI."),
]
TopicOption = Annotated[
    str | None, typer.Option("--topic", help="Events topic; MATIH_KAFKA_TOPIC.")
]
GroupOption = Annotated[
    str | None, typer.Option("--group", help="Worker consumer group; MATIH_KAFKA_CONSUMER_GROUP.")
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")]

T = TypeVar("T")


def run_command(command: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs the coroutine ``work()`` makes; a failure of the product's own (Kafka away, a
    refused right, a bad argument) is one line on stderr and exit status 1, never a
    traceback."""
    try:
        return asyncio.run(work())
    except IngestError as exc:
        Console(stderr=True).print(f"[red]{command} failed:[/] {exc}")
        raise typer.Exit(1) from exc


def kafka_settings(bootstrap: str | None, topic: str | None, group: str | None) -> KafkaSettings:
    """Kafka settings from the environment, with the given options taking precedence."""
    overrides: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "consumer_group": group,
    }
    return KafkaSettings(**{key: value for key, value in overrides.items() if value is not None})


def mlflow_settings(tracking_uri: str | None) -> MlflowSettings:
    """MLflow settings from the environment, with the given URI taking precedence."""
    return MlflowSettings(tracking_uri=tracking_uri) if tracking_uri else MlflowSettings()


def configure_logging(verbose: bool) -> None:
    """One line per record, timestamped; aiokafka's retry chatter and its harmless
    start-up errors only with ``verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
        quiet_harmless_kafka_logs()
