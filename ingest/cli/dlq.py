"""``matih-ingest dlq``: inspect dead letters and re-drive them after a fix."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from consumers.redrive import DeadLetter, DeadLetterReader, redrive, redrive_group
from ingest.cli.options import (
    BootstrapOption,
    GroupOption,
    TopicOption,
    kafka_settings,
    run_command,
)
from ingest.settings import KafkaSettings

app = typer.Typer(
    help="Dead letters: events that could not be written, with the reason.", no_args_is_help=True
)
console = Console()

TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="Only this tenant's dead letters.")
]


async def _collect(kafka: KafkaSettings, tenant: str | None) -> list[DeadLetter]:
    """The dead letters, by partition and offset."""
    async with DeadLetterReader(kafka) as reader:
        letters = [letter async for letter in reader.letters(tenant)]
    return sorted(letters, key=lambda letter: (letter.partition, letter.offset))


@app.command("list")
def list_(
    bootstrap_servers: BootstrapOption = None,
    topic: TopicOption = None,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many (newest).")] = 50,
) -> None:
    """List dead letters: where they sit, when, whose, from where, and why."""
    kafka = kafka_settings(bootstrap_servers, topic, None)
    letters = run_command("dlq list", lambda: _collect(kafka, tenant))
    table = Table(
        "partition",
        "offset",
        "time",
        "tenant",
        "source",
        "error",
        title=f"{len(letters)} dead letters",
    )
    for letter in letters[-limit:]:
        table.add_row(
            str(letter.partition),
            str(letter.offset),
            letter.time[:19],
            letter.tenant_id,
            letter.source,
            letter.error[:120],
        )
    console.print(table)


@app.command()
def show(
    partition: Annotated[int, typer.Argument(help="Partition of the dead-letter topic.")],
    offset: Annotated[int, typer.Argument(help="Offset in that partition.")],
    bootstrap_servers: BootstrapOption = None,
    topic: TopicOption = None,
) -> None:
    """Show one dead letter in full: its headers and its value."""
    kafka = kafka_settings(bootstrap_servers, topic, None)
    found = [
        x
        for x in run_command("dlq show", lambda: _collect(kafka, None))
        if (x.partition, x.offset) == (partition, offset)
    ]
    if not found:
        console.print(f"[red]no dead letter at partition {partition}, offset {offset}[/]")
        raise typer.Exit(1)
    letter = found[0]
    console.print(f"[bold]error[/]  {letter.error}")
    console.print(
        f"[bold]source[/] {letter.source}   [bold]tenant[/] {letter.tenant_id}"
        f"   [bold]time[/] {letter.time}"
    )
    console.print(f"[bold]key[/]    {letter.key!r}")
    for key, value in letter.original_headers:
        console.print(f"[bold]header[/] {key}: {value.decode(errors='replace')}")
    try:
        console.print_json(json.dumps(json.loads(letter.value or b"")))
    except ValueError:
        console.print(f"[bold]value[/]  {letter.value!r}")


@app.command("redrive")
def redrive_(
    bootstrap_servers: BootstrapOption = None,
    topic: TopicOption = None,
    group: GroupOption = None,
    tenant: TenantOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be re-driven.")
    ] = False,
) -> None:
    """Re-publish dead letters to the topic they came from, each once.

    Fix the cause first (a worker bug, a store schema); a letter that fails again
    comes back with its new reason.
    """
    kafka = kafka_settings(bootstrap_servers, topic, group)
    letters = run_command("dlq redrive", lambda: redrive(kafka, tenant_id=tenant, dry_run=dry_run))
    verb = "would re-drive" if dry_run else "re-drove"
    console.print(
        f"{verb} {len(letters)} dead letters (progress kept in group {redrive_group(kafka)})"
    )
