"""``matih-ingest replay``: re-read a retained range of the events topic into MLflow.

For backfills and for rebuilding a store. The replay reads with its own group-less
consumer (the workers' offsets never move) and writes through the workers' sink, so
it is idempotent: replaying into the store the workers fill adds nothing.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from consumers.replay import ReplayBound, Replayer, ReplaySummary, parse_bound
from consumers.sink.mlflow import MlflowSink
from ingest.cli.options import (
    BootstrapOption,
    TopicOption,
    TrackingUriOption,
    VerboseOption,
    configure_logging,
    kafka_settings,
    mlflow_settings,
    run_command,
)
from ingest.settings import KafkaSettings, MlflowSettings

console = Console(stderr=True)


def replay(
    *,
    start: Annotated[
        str,
        typer.Option("--from", help="ISO time (2026-11-26T14:00:00Z; UTC if no zone) or offset."),
    ],
    stop: Annotated[
        str | None,
        typer.Option("--to", help="ISO time or offset, exclusive; default: the log end now."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Replay only this tenant's events.")] = None,
    run: Annotated[str | None, typer.Option(help="Replay only this run's events.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and count, write nothing.")
    ] = False,
    bootstrap_servers: BootstrapOption = None,
    tracking_uri: TrackingUriOption = None,
    topic: TopicOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Replay the events topic from --from to --to into MLflow, idempotently.

    Prints a progress bar while reading and a summary of what was written.
    """
    configure_logging(verbose)
    summary = run_command(
        "replay",
        lambda: _replay(
            kafka=kafka_settings(bootstrap_servers, topic, None),
            mlflow=mlflow_settings(tracking_uri),
            low=parse_bound(start),
            high=parse_bound(stop) if stop else None,
            tenant=tenant,
            run=run,
            dry_run=dry_run,
        ),
    )
    show_summary(summary, dry_run)


async def _replay(
    *,
    kafka: KafkaSettings,
    mlflow: MlflowSettings,
    low: ReplayBound,
    high: ReplayBound | None,
    tenant: str | None,
    run: str | None,
    dry_run: bool,
) -> ReplaySummary:
    sink = None if dry_run else MlflowSink(mlflow)
    async with Replayer(kafka, sink, tenant=tenant, run=run) as replayer:
        plan = await replayer.plan(low, high)
        columns = (
            TextColumn("[bold]replay[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("replay", total=plan.total)
            return await replayer.replay(plan, lambda n: progress.advance(task, n))


class _RateColumn(ProgressColumn):
    """Records per second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:
            speed = task.completed / task.elapsed
        return Text(
            "? rec/s" if speed is None else f"{speed:,.0f} rec/s", style="progress.data.speed"
        )


def show_summary(summary: ReplaySummary, dry_run: bool) -> None:
    """Prints the summary table (to stdout) and the dead letters (to stderr)."""
    # Writes are idempotent: what was already in the store counts too, and adds nothing.
    verb = "would replay" if dry_run else "replayed"
    table = Table("", verb, title=f"replay summary ({summary.seconds:.1f} s)")
    table.add_row("records read", str(summary.records))
    table.add_row("events matched", str(summary.matched))
    table.add_row("runs", str(len(summary.runs)))
    table.add_row("runs created", str(summary.created))
    table.add_row("runs ended", str(summary.ended))
    table.add_row("metric points", str(summary.points))
    table.add_row("params", str(summary.params))
    table.add_row("tags", str(summary.tags))
    table.add_row("dead letters", str(len(summary.dead_letters)))
    Console().print(table)
    for rejection in summary.dead_letters[:20]:
        where = rejection.source
        at = f"{where.topic}[{where.partition}]@{where.offset}: " if where else ""
        console.print(f"[yellow]dead letter[/] {at}{rejection.reason}")
    if len(summary.dead_letters) > 20:
        console.print(f"... and {len(summary.dead_letters) - 20} more")
