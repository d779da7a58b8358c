"""``matih-ingest demo``: a simulated training job through the SDK, then what MLflow holds."""

from __future__ import annotations

import math
import random
import time
from typing import Annotated

import typer
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

from ingest.cli.options import (
    BootstrapOption,
    TopicOption,
    TrackingUriOption,
    configure_logging,
    kafka_settings,
    mlflow_settings,
)
from ingest.tracking.reader import RunReader
from producers import ExperimentTracker, ProducerSettings, RunConfig

console = Console()


def demo(
    bootstrap_servers: BootstrapOption = None,
    tracking_uri: TrackingUriOption = None,
    topic: TopicOption = None,
    tenant: Annotated[str, typer.Option(help="Tenant of the demo run.")] = "acme-corp",
    epochs: Annotated[int, typer.Option(min=1, help="Training steps to simulate.")] = 100,
) -> None:
    """Train a pretend model for EPOCHS steps through the SDK, then print the run
    as MLflow stores it: status, params and the val_loss history."""
    configure_logging(verbose=False)
    settings = ProducerSettings(
        kafka=kafka_settings(bootstrap_servers, topic, None), mlflow=mlflow_settings(tracking_uri)
    )
    run_id = simulate_training(settings, tenant, epochs)
    show_run(settings, tenant, run_id)


def simulate_training(settings: ProducerSettings, tenant: str, epochs: int) -> str:
    """Logs a run the way the spec's SDK example does; returns its run id."""
    rng = random.Random(7)
    with ExperimentTracker(settings) as tracker:
        started = time.perf_counter()
        with tracker.start_run(
            experiment_name="fraud-detection-v3",
            run_config=RunConfig(
                run_name="xgboost-baseline", tenant_id=tenant, user_id="alice@acme.com"
            ),
        ) as run:
            run.log_params(
                {"learning_rate": 0.01, "max_depth": 6, "n_estimators": 200, "subsample": 0.8}
            )
            run.set_tags({"model_type": "xgboost", "dataset_version": "v2.1"})
            for epoch in range(epochs):
                decay = math.exp(-epoch / 30)
                run.log_metrics(
                    {
                        "train_loss": round(0.2 + 0.6 * decay + rng.uniform(0, 0.01), 4),
                        "val_loss": round(0.25 + 0.6 * decay + rng.uniform(0, 0.02), 4),
                        "val_accuracy": round(0.95 - 0.4 * decay, 4),
                    },
                    step=epoch,
                )
        elapsed = time.perf_counter() - started
        console.print(
            f"logged run [bold]{run.run_id}[/] ({epochs} steps x 3 metrics) in"
            f" {elapsed * 1000:.0f} ms, acknowledged by Kafka; waiting for the workers to write it"
        )
        tracker.get_metric_history(run_id=run.run_id, key="val_loss")  # waits for the workers
    return run.run_id


def show_run(settings: ProducerSettings, tenant: str, run_id: str) -> None:
    """Prints the MLflow run: identity, status, params and the val_loss history."""
    reader = RunReader(settings.mlflow.tracking_uri)
    run = reader.find_run(tenant, run_id)
    if run is None:
        console.print(
            f"[red]run {run_id} is not in MLflow at {settings.mlflow.tracking_uri} yet;[/]"
            " is a worker running (matih-ingest worker)?"
        )
        raise typer.Exit(1)
    experiment = MlflowClient(settings.mlflow.tracking_uri).get_experiment(run.info.experiment_id)
    console.print(
        f"MLflow run [bold]{run.info.run_id}[/] in experiment [bold]{experiment.name}[/]:"
        f" {run.info.run_name}, status [bold]{run.info.status}[/],"
        f" {(run.info.end_time - run.info.start_time) / 1000:.2f} s"
    )
    params = Table("param", "value", title="params")
    for key, value in sorted(run.data.params.items()):
        params.add_row(key, value)
    console.print(params)
    history = reader.get_metric_history(tenant, run_id, "val_loss")
    table = Table(
        "step", "val_loss", "timestamp", title=f"val_loss history ({len(history)} points)"
    )
    shown = history if len(history) <= 10 else history[:5] + history[-5:]
    for point in shown:
        table.add_row(str(point["step"]), f"{point['value']:.4f}", str(point["timestamp"]))
    console.print(table)
