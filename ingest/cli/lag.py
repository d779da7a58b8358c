"""``matih-ingest lag``: how far the workers are behind, and whether they are healthy.

Per group, topic and partition: committed offset, log-end offset, lag in records
and in seconds (the age of the oldest unconsumed event), the member holding the
partition, and a status judged over a window of samples by Burrow's rules (see
``consumers.lag_status``); then a roll-up per tenant. Where a group has committed
nothing, its lag counts from the log start, where its first read begins (see
``consumers.lag``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Column, Table

from consumers.lag import LagMonitor
from consumers.lag_status import StatusRules
from consumers.lag_watch import LagReport, LagWatcher
from ingest.cli.options import (
    BootstrapOption,
    VerboseOption,
    configure_logging,
    kafka_settings,
    run_command,
)
from ingest.settings import KafkaSettings
from ingest.topics import events_topic

console = Console()
_STYLE = {"OK": "green", "WARN": "yellow"}
_FROM_START = "*"


def lag(
    *,
    groups: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="Consumer group (repeatable); default the workers'."),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Keep sampling and redrawing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document per sample.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between samples.")] = 2.0,
    samples: Annotated[
        int, typer.Option(min=2, help="Samples taken before the first report (the status needs 2).")
    ] = 3,
    window: Annotated[int, typer.Option(min=2, help="Samples the status is judged on.")] = 10,
    stop_after: Annotated[
        float, typer.Option(help="Least seconds without progress before STOP.")
    ] = 0.0,
    scan_cap: Annotated[
        int, typer.Option(min=1, help="Most unconsumed records read per partition for tenants.")
    ] = 10_000,
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic",
            help="Topic the groups consume, counted even where they committed nothing;"
            " MATIH_KAFKA_TOPIC. Default: the events topic, for the workers' group.",
        ),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Show consumer lag per group, partition and tenant, with Burrow-style statuses.

    Exits 1 when a group is ERR (STOP, STALL or REWIND somewhere, or Kafka unreadable),
    so it can gate a script; with --watch it runs until Ctrl-C. A group that has
    committed nothing is counted from the log start, where its first read begins.
    """
    configure_logging(verbose)
    kafka = kafka_settings(bootstrap_servers, topic, None)
    names = groups or [kafka.consumer_group]
    # Other groups (--group) are measured on the topics they committed to or hold,
    # unless --topic names theirs.
    topics = {
        group: [events_topic(kafka)] if topic or group == kafka.consumer_group else []
        for group in names
    }
    rules = StatusRules(window=window, stop_after_s=stop_after)
    try:
        worst = run_command(
            "lag",
            lambda: _run(
                kafka=kafka,
                topics=topics,
                rules=rules,
                scan_cap=scan_cap,
                watch=watch,
                as_json=as_json,
                interval=interval,
                samples=samples,
            ),
        )
    except KeyboardInterrupt:
        return
    if worst == "ERR":
        raise typer.Exit(1)


async def _run(
    *,
    kafka: KafkaSettings,
    topics: dict[str, list[str]],
    rules: StatusRules,
    scan_cap: int,
    watch: bool,
    as_json: bool,
    interval: float,
    samples: int,
) -> str:
    async with LagMonitor(kafka, scan_cap=scan_cap) as monitor:
        watchers = [LagWatcher(monitor, group, rules, named) for group, named in topics.items()]
        reports = await _sample_all(watchers, samples, interval)
        if not watch:
            _emit(reports, as_json)
            return _worst(reports)
        if as_json:
            while True:
                _emit(reports, as_json=True)
                await asyncio.sleep(interval)
                reports = await _sample_all(watchers, 1, interval)
        with Live(_render(reports), console=console, auto_refresh=False) as live:
            while True:
                await asyncio.sleep(interval)
                reports = await _sample_all(watchers, 1, interval)
                live.update(_render(reports), refresh=True)


async def _sample_all(watchers: list[LagWatcher], samples: int, interval: float) -> list[LagReport]:
    reports: list[LagReport] = []
    for index in range(samples):
        if index:
            await asyncio.sleep(interval)
        reports = [await watcher.sample() for watcher in watchers]
    return reports


def _worst(reports: list[LagReport]) -> str:
    order = ["OK", "WARN", "ERR"]
    return max((r.status.value for r in reports), key=order.index, default="OK")


def _emit(reports: list[LagReport], as_json: bool) -> None:
    if as_json:
        print(json.dumps([report_json(r) for r in reports]), flush=True)
    else:
        console.print(_render(reports))


def report_json(report: LagReport) -> dict[str, Any]:
    """A report as plain data (the ``--json`` form)."""
    lag = report.lag
    now = lag.sampled_at_ms
    return {
        "group": lag.group,
        "state": lag.state,
        "members": lag.members,
        "status": report.status.value,
        "error": report.error,
        "samples": report.samples,
        "sampled_at_ms": now,
        "total_lag": lag.total_lag,
        "max_lag_seconds": lag.max_lag_seconds,
        "uncommitted_partitions": lag.uncommitted,
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "log_start": p.log_start,
                "log_end": p.log_end,
                "lag": p.lag,
                "from_log_start": p.from_log_start,
                "lag_seconds": p.lag_seconds(now),
                "owner": p.owner,
                "status": report.statuses[(p.topic, p.partition)].value,
            }
            for p in lag.partitions
        ],
        "tenants": [
            {"tenant": t.tenant, "lag": t.lag, "lag_seconds": t.lag_seconds(now)}
            for t in lag.tenants
        ],
        "tenants_capped": lag.tenants_capped,
    }


def _render(reports: list[LagReport]) -> Group:
    parts: list[Any] = []
    for report in reports:
        lag = report.lag
        now = lag.sampled_at_ms
        style = _STYLE.get(report.status.value, "red")
        title = (
            f"group [bold]{lag.group}[/] ({lag.state}, {lag.members} members):"
            f" [{style}]{report.status.value}[/], lag {lag.total_lag} events,"
            f" oldest {lag.max_lag_seconds:.1f} s, {report.samples} samples"
        )
        if lag.uncommitted:
            title += f", nothing committed on {lag.uncommitted} of {len(lag.partitions)} partitions"
        if report.error:
            title += f"\n[red]{report.error}[/]"
        table = Table(
            Column("topic", no_wrap=True),
            "partition",
            "committed",
            "log end",
            "lag",
            "lag s",
            "owner",
            "status",
            title=title,
            title_justify="left",
            caption=(
                f"{_FROM_START} nothing committed: counted from the log start, where the"
                " group's first read begins"
                if any(p.from_log_start and p.lag for p in lag.partitions)
                else None
            ),
            caption_justify="left",
        )
        for p in lag.partitions:
            status = report.statuses[(p.topic, p.partition)].value
            table.add_row(
                p.topic,
                str(p.partition),
                _dash(p.committed),
                str(p.log_end),
                f"{p.lag}{_FROM_START}" if p.from_log_start and p.lag else str(p.lag),
                f"{p.lag_seconds(now):.1f}",
                (p.owner or "-")[:24],
                f"[{_STYLE.get(status, 'red')}]{status}[/]",
            )
        parts.append(table)
        tenants = Table(
            "tenant",
            "lag",
            "lag s",
            title="per tenant"
            + (" (capped: counts cover the records read)" if lag.tenants_capped else ""),
            title_justify="left",
        )
        for t in lag.tenants:
            tenants.add_row(t.tenant, str(t.lag), f"{t.lag_seconds(now):.1f}")
        if lag.tenants:
            parts.append(tenants)
    return Group(*parts)


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)
