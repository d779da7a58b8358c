"""``matih-ingest spool list|flush``: the spools trainers leave when Kafka is out of reach.

A trainer that exits while Kafka is away leaves its undelivered events in a spool
directory (``<spool root>/<pid>-<hex>/``). ``flush`` delivers every spool whose
process is gone; a live process's spool is skipped (it drains itself).
"""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ingest.cli.options import BootstrapOption, TopicOption, VerboseOption, configure_logging
from ingest.errors import IngestError
from ingest.topics import TENANT_INFIX
from producers import ProducerSettings
from producers.delivery.recovery import SpoolRecovery, recover_spool, recovery_settings
from producers.spool.directory import LOCK_FILE, SpoolInfo, list_spools

app = typer.Typer(help="Spools of events that trainers could not deliver.", no_args_is_help=True)
console = Console()

SpoolDirOption = Annotated[
    Path | None,
    typer.Option(
        "--spool-dir",
        help="A spool root (one folder per process) or one spool; MATIH_PRODUCER_SPOOL_DIR.",
    ),
]


@app.command("list")
def list_command(spool_dir: SpoolDirOption = None) -> None:
    """List spools: path, owner pid and whether it is alive, size, topic."""
    spools = _find(spool_dir)
    if not spools:
        console.print(f"no spools under {_root(spool_dir)}")
        return
    table = Table("spool", "pid", "owner", "bytes", "created", "topic")
    for info in spools:
        created = info.owner.get("created")
        table.add_row(
            str(info.path),
            str(info.owner.get("pid", "?")),
            "alive" if info.live else "gone",
            str(info.size_bytes),
            _when(created),
            _destination(
                str(info.owner.get("topic", "?")), info.owner.get("tenant_topics") is True
            ),
        )
    console.print(table)


@app.command("flush")
def flush_command(
    spool_dir: SpoolDirOption = None,
    bootstrap_servers: BootstrapOption = None,
    topic: TopicOption = None,
    timeout: Annotated[float, typer.Option(help="Bound on each spool's delivery, s.")] = 300.0,
    verbose: VerboseOption = False,
) -> None:
    """Deliver the spools of processes that are gone to Kafka, then delete them.

    Each spool goes to the topic and brokers its owner used unless --topic or
    --bootstrap-servers say otherwise; a spool written with tenant topics goes to
    each tenant's own topic (as its owner's events did), under the credential of
    MATIH_KAFKA_*. Exits 1 if anything is left.
    """
    configure_logging(verbose)
    left = 0
    for info in _find(spool_dir):
        if info.live:
            pid = info.owner.get("pid")
            console.print(f"skipped {info.path}: its process (pid {pid}) is alive")
            left += 1
            continue
        settings = recovery_settings(info.owner, bootstrap_servers, topic)
        try:
            result = asyncio.run(recover_spool(info.path, settings, timeout))
        except IngestError as exc:
            console.print(f"[red]could not deliver {info.path}:[/] {exc}")
            left += 1
            continue
        console.print(
            f"{info.path}: delivered {result.delivered_events} events"
            f" ({result.delivered_points} metric points) to {_topics(result, settings)}"
            f" in {result.seconds:.1f}s; {result.left_events} left"
            + (
                f"; {result.rejected_events} unreadable records dropped (see the log)"
                if result.rejected_events
                else ""
            )
        )
        left += result.left_events
    if left:
        raise typer.Exit(1)


def _when(created: float | None) -> str:
    if not created:
        return "?"
    return datetime.datetime.fromtimestamp(created).isoformat(timespec="seconds")


def _root(spool_dir: Path | None) -> Path:
    return spool_dir if spool_dir is not None else ProducerSettings().spool_dir


def _find(spool_dir: Path | None) -> list[SpoolInfo]:
    root = _root(spool_dir)
    if (root / LOCK_FILE).exists():  # one spool, not a root
        return [info for info in list_spools(root.parent) if info.path == root]
    return list_spools(root)


def _topics(result: SpoolRecovery, settings: ProducerSettings) -> str:
    """Where the events went: the topics Kafka acknowledged them on."""
    if result.topics:
        return ", ".join(result.topics)
    return _destination(settings.kafka.topic, settings.kafka.tenant_topics)


def _destination(topic: str, tenant_topics: bool) -> str:
    """The topic a spool's events go to, or the tenant topics of it."""
    return f"{topic}{TENANT_INFIX}<tenant>" if tenant_topics else topic
