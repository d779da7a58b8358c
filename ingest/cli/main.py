"""The ``matih-ingest`` command: one Typer app, one module per command."""

from __future__ import annotations

import typer

from ingest.cli import api, asyncapi, demo, dlq, lag, replay, spool, tenants, up, worker

app = typer.Typer(
    name="matih-ingest",
    help="Run tracking for MATIH: trainers publish run events to Kafka, workers write MLflow.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("up")(up.up)
app.command("worker")(worker.worker)
app.command("demo")(demo.demo)
app.command("api")(api.api)
app.command("asyncapi")(asyncapi.asyncapi)
app.command("replay")(replay.replay)
app.command("lag")(lag.lag)
app.add_typer(dlq.app, name="dlq")
app.add_typer(spool.app, name="spool")
app.add_typer(tenants.app, name="tenants")

if __name__ == "__main__":
    app()
