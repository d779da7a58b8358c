"""Benchmark: a trainer that outruns Kafka and one worker, within the SDK's memory bound.

    python -m tests.bench.overload [--quick] [--no-readme] [--unthrottled-s S] [--burst-s S]

Two scenarios, each with one ``matih-ingest worker`` writing a fresh sqlite store:

- ``unthrottled``: one trainer logs four metrics a step as fast as its loop goes;
- ``burst``: one trainer paced to ten times ``--capacity`` (MLflow's own ``log_batch``
  rate into sqlite, 11,000 points/s, by default);
- ``unthrottled_thread``: the unthrottled loop with the sender on a thread of the
  trainer's process (``MATIH_PRODUCER_SENDER=thread``), to show what the sender
  process saves the call latency.

And ``alone``: the unthrottled loop with Kafka out of reach (everything spooled), with
each sender, so that no broker or worker competes for the cores: the SDK's own cost.
And ``floor``: the unthrottled loop with no SDK (a call keeps its arguments only), the
call latency the interpreter and the machine give in the same run.

For each: the peak RSS of the trainer and its sender process (and its growth over the
loop), the latency of every
call (p50 / p99 / p99.9 / max), points logged, spilled to the spool, dropped and landed
(read back through MLflow's client; landed must equal logged while the spool has
room), and the time from the loop's end until the worker has committed everything.
Then ``bytes``: bytes per point on the topic (the broker's segment files) with lz4 and
without compression. Writes its table into README.md between the overload markers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.processes import ROOT, WorkerGroup, collect, spawn_child, worker_env
from tests.bench.report import write_readme
from tests.bench.services import Services
from tests.bench.stores import SQLITE
from tests.bench.topic import broker_port, fresh_topic, wait_drained
from tests.bench.verify import count_points

START = "<!-- overload:start -->"
END = "<!-- overload:end -->"
SCENARIOS = {
    "unthrottled": "unthrottled",
    "burst": "burst",
    "unthrottled_thread": "unthrottled, sender thread",
}
"""The scenarios in the report, with their names in the README's table."""
MEMORY_BYTES = 128 * 1024 * 1024
SPOOL_BYTES = 4 * 1024 * 1024 * 1024


def options() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.overload", description=__doc__)
    add = parser.add_argument
    add("--quick", action="store_true", help="3 s unthrottled, 5 s burst")
    add("--no-readme", dest="readme", action="store_false", help="do not write README.md")
    add("--unthrottled-s", type=float, default=10.0, help="length of the unthrottled loop (10)")
    add("--burst-s", type=float, default=30.0, help="length of the burst (30)")
    add("--capacity", type=float, default=11_000, help="points/s the burst is 10x of (11,000)")
    add("--memory-bytes", type=int, default=MEMORY_BYTES, help="the SDK's bound (128 MiB)")
    add("--bytes-calls", type=int, default=50_000, help="calls logged per compression (50,000)")
    add("--timeout", type=float, default=900, help="bound on every wait, seconds (900)")
    add("--log-dir", type=Path, help="keep the workers' output here (default: discarded)")
    # What Services reads: the broker only.
    parser.set_defaults(stores=[SQLITE], pg_port=0)
    return parser


def scenario(
    bench: Services, args: argparse.Namespace, label: str, **how: float | str
) -> dict[str, Any]:
    """One trainer logging as ``how`` says while one worker writes a fresh sqlite store."""
    kafka = fresh_topic(bench.bootstrap, label)
    with bench.store(SQLITE) as store:
        env = worker_env(kafka, store.settings)
        group = WorkerGroup(env, 1, bench.folder / "logs", broker_port(bench.bootstrap))
        group.start()
        try:
            group.wait_connected()
            child = spawn_child(
                "tests.bench.overload_trainer",
                {
                    "bootstrap": bench.bootstrap,
                    "topic": kafka.topic,
                    "tenant": f"tenant-{label}",
                    "spool_dir": str(bench.folder / "spool" / label),
                    "memory_bytes": args.memory_bytes,
                    "spool_max_bytes": SPOOL_BYTES,
                    **how,
                },
            )
            (result,) = collect([child], args.timeout + float(how.get("duration_s", 0)))
            done = wait_drained(kafka, args.timeout, group.check_alive)
            wall_offset = time.time() - time.monotonic()
        finally:
            group.stop()
        counts = count_points(store.settings.tracking_uri, [result])
    seconds = result["ended"] - result["began"]
    return {
        "points_per_s": result["points"] / seconds,
        "trainer": result,
        "landed": counts.as_dict(),
        "seconds_to_drain_after_loop": done - (result["ended"] - wall_offset),
        "seconds_to_ack_after_loop": result["acked"] - result["ended"],
    }


def floor(args: argparse.Namespace) -> dict[str, Any]:
    """The unthrottled loop around a call that only keeps its arguments."""
    child = spawn_child(
        "tests.bench.overload_trainer", {"floor": True, "duration_s": args.unthrottled_s}
    )
    (result,) = collect([child], args.timeout + args.unthrottled_s)
    return result


def alone(bench: Services, args: argparse.Namespace, sender: str) -> dict[str, Any]:
    """The unthrottled loop with Kafka out of reach (a closed port): everything goes
    to the spool, and no broker or worker competes with the trainer and its sender for
    the machine's cores. What the SDK's own design costs the call."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = spawn_child(
        "tests.bench.overload_trainer",
        {
            "bootstrap": f"127.0.0.1:{port}",
            "topic": "alone.events",
            "tenant": f"tenant-alone-{sender}",
            "spool_dir": str(bench.folder / "spool" / f"alone-{sender}"),
            "memory_bytes": args.memory_bytes,
            "spool_max_bytes": SPOOL_BYTES,
            "duration_s": args.unthrottled_s,
            "sender": sender,
            "warm_s": 1.0,
            "close_timeout_s": 5.0,
        },
    )
    (result,) = collect([child], args.timeout + args.unthrottled_s)
    return result


def topic_bytes(bootstrap: str, topic: str) -> int:
    """Bytes of the topic's segment files on the local broker's disk."""
    port = broker_port(bootstrap)
    data = Path(os.environ.get("KAFKA_DATA_DIR", ROOT / ".data" / f"kafka-{port}")) / "log"
    return sum(path.stat().st_size for path in data.glob(f"{topic}-*/*.log"))


def bytes_per_point(bench: Services, args: argparse.Namespace) -> dict[str, Any]:
    """The same calls logged with lz4 and without compression: bytes per point on disk."""
    measured: dict[str, Any] = {}
    for compression in ("lz4", "none"):
        kafka = fresh_topic(bench.bootstrap, f"bytes-{compression}")
        child = spawn_child(
            "tests.bench.overload_trainer",
            {
                "bootstrap": bench.bootstrap,
                "topic": kafka.topic,
                "tenant": f"tenant-{compression}",
                "spool_dir": str(bench.folder / "spool" / compression),
                "memory_bytes": args.memory_bytes,
                "spool_max_bytes": SPOOL_BYTES,
                "compression": compression,
                "calls": args.bytes_calls,
            },
        )
        (result,) = collect([child], args.timeout)
        measured[compression] = topic_bytes(bench.bootstrap, kafka.topic) / result["points"]
    return measured


def landed(counts: dict[str, Any], dropped: int) -> str:
    """How the points in MLflow compare with those logged and those the SDK dropped."""
    if counts["exact"]:
        return "all, once"
    if counts["duplicated"] == 0 and counts["missing"] == dropped:
        return "all not dropped, once"
    return f"{counts['missing'] - dropped:,} lost, {counts['duplicated']:,} twice"


def table(report: dict[str, Any]) -> str:
    """The README's table of the overload figures."""
    rows = [
        "| scenario | points/s logged | SDK peak RSS, MB (growth) | call p50 / p99 / p99.9"
        " / max, us | calls > 50 us | logged | spilled | dropped | landed | drain after"
        " the loop, s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label in SCENARIOS.items():
        measured = report[name]
        trainer, calls = measured["trainer"], measured["trainer"]["call_us"]
        growth = trainer["peak_rss_mb"] - trainer["rss_before_mb"] - trainer["latency_array_mb"]
        rows.append(
            f"| {label} ({report['settings'][name]}) | {measured['points_per_s']:,.0f}"
            f" | {trainer['peak_rss_mb']:,.0f} ({growth:,.0f})"
            f" | {calls['p50']:.1f} / {calls['p99']:.1f} / {calls['p99.9']:.1f}"
            f" / {calls['max']:,.0f}"
            f" | {calls['over_50us']:,} of {trainer['calls']:,}"
            f" | {trainer['points']:,} | {trainer['spilled_points']:,}"
            f" | {trainer['dropped_points']:,} | {measured['landed']['stored']:,}"
            f" ({landed(measured['landed'], trainer['dropped_points'])})"
            f" | {measured['seconds_to_drain_after_loop']:.1f} |"
        )
    for sender, trainer in report["alone"].items():
        calls = trainer["call_us"]
        seconds = trainer["ended"] - trainer["began"]
        growth = trainer["peak_rss_mb"] - trainer["rss_before_mb"] - trainer["latency_array_mb"]
        rows.append(
            f"| SDK alone, Kafka out of reach, sender {sender}"
            f" ({report['settings']['unthrottled']})"
            f" | {trainer['points'] / seconds:,.0f}"
            f" | {trainer['peak_rss_mb']:,.0f} ({growth:,.0f})"
            f" | {calls['p50']:.1f} / {calls['p99']:.1f} / {calls['p99.9']:.1f}"
            f" / {calls['max']:,.0f}"
            f" | {calls['over_50us']:,} of {trainer['calls']:,}"
            f" | {trainer['points']:,} | {trainer['spilled_points']:,}"
            f" | {trainer['dropped_points']:,} | (spooled) | - |"
        )
    base = report["floor"]["call_us"]
    rows.append("")
    rows.append(
        f"The same unthrottled loop with no SDK (a call keeps its arguments only): call"
        f" p50 / p99 / p99.9 / max {base['p50']:.1f} / {base['p99']:.1f} / {base['p99.9']:.1f}"
        f" / {base['max']:,.0f} us, {base['over_50us']:,} of {report['floor']['calls']:,}"
        " calls over 50 us."
    )
    sizes = report["bytes_per_point"]
    rows.append("")
    rows.append(
        f"Bytes per point on the topic: {sizes['lz4']:.1f} with lz4, {sizes['none']:.1f}"
        f" without compression. SDK memory bound {report['settings']['memory_mb']} MiB;"
        f" 2 cores shared with other work while measured (load {report['load_1m']:.1f})."
    )
    return "\n".join(rows)


def main() -> None:
    """Runs both scenarios and the bytes measurement; prints JSON, writes the README."""
    args = options().parse_args()
    if args.quick:
        args.unthrottled_s, args.burst_s, args.bytes_calls = 3.0, 5.0, 20_000
    logging.basicConfig(level=logging.WARNING)
    report: dict[str, Any] = {
        "load_1m": os.getloadavg()[0],
        "settings": {
            "unthrottled": f"{args.unthrottled_s:g} s",
            "burst": f"10 x {args.capacity:,.0f} points/s, {args.burst_s:g} s",
            "unthrottled_thread": f"{args.unthrottled_s:g} s",
            "memory_mb": args.memory_bytes // (1024 * 1024),
        },
    }
    with tempfile.TemporaryDirectory() as folder, Services(args, Path(folder)) as bench:
        report["unthrottled"] = scenario(bench, args, "unthrottled", duration_s=args.unthrottled_s)
        report["burst"] = scenario(
            bench, args, "burst", duration_s=args.burst_s, rate_points_s=10 * args.capacity
        )
        report["unthrottled_thread"] = scenario(
            bench, args, "unthrottled-thread", duration_s=args.unthrottled_s, sender="thread"
        )
        report["alone"] = {sender: alone(bench, args, sender) for sender in ("process", "thread")}
        report["floor"] = floor(args)
        report["bytes_per_point"] = bytes_per_point(bench, args)
    print(json.dumps(report, indent=2))
    if args.readme:
        write_readme(ROOT / "README.md", table(report), START, END)
    lost = [name for name in SCENARIOS if not report[name]["landed"]["exact"]]
    if lost:
        sys.exit(f"points lost or doubled in: {', '.join(lost)}")


if __name__ == "__main__":
    main()
