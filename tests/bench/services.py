"""What the benchmark runs against: the broker, PostgreSQL and fresh stores, and the
command line that sizes it."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from tests.bench.processes import ROOT
from tests.bench.stores import POSTGRESQL, SQLITE, PostgresServer, Store, StoreFactory
from tests.bench.topic import broker_port

KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"

FULL = {
    "repetitions": 3,
    "points": 200_000,
    "steps": 100_000,
    "mlflow_calls": 300,
    "per_point": 500,
    "single_points": 100_000,
    "freshness_s": 60.0,
    "warmup_s": 5.0,
    "burst_s": 30.0,
}
QUICK = {
    "repetitions": 1,
    "points": 20_000,
    "steps": 20_000,
    "mlflow_calls": 100,
    "per_point": 200,
    "single_points": 20_000,
    "freshness_s": 10.0,
    "warmup_s": 2.0,
    "burst_s": 3.0,
}


def options() -> argparse.ArgumentParser:
    """The command line; ``--quick`` changes the defaults of every size not given."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.pipeline",
        description="Benchmarks the pipeline beside MLflow's own figures (see the module doc).",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="small sizes, 1 repetition: about 2-3 minutes")
    add("--no-readme", dest="readme", action="store_false", help="do not write README.md")
    add("--repetitions", type=int, help="repetitions of every repeated figure (3)")
    add("--points", type=int, help="points the trainers log for the drain rates (200,000)")
    add("--trainers", type=int, default=4, help="trainer processes, one tenant each (4)")
    add("--steps", type=int, help="SDK calls timed for the call cost (100,000)")
    add("--mlflow-calls", type=int, help="mlflow.log_metrics calls timed (300)")
    add("--per-point", type=int, help="points logged with log_metric one at a time (500)")
    add("--single-points", type=int, help="points of the one-trainer run (100,000)")
    add("--freshness-s", type=float, help="measured window of the steady load (60)")
    add("--warmup-s", type=float, help="steady load before the window (5)")
    add("--burst-s", type=float, help="length of the burst (30)")
    add(
        "--stores",
        type=lambda text: text.split(","),
        default=[SQLITE, POSTGRESQL],
        help="store kinds of the drain rates (sqlite,postgresql)",
    )
    add("--live-store", default=POSTGRESQL, help="store of freshness and burst (postgresql)")
    add("--pg-port", type=int, default=55433, help="port of the PostgreSQL used (55433)")
    add("--timeout", type=float, default=900, help="bound on every wait, seconds (900)")
    add("--log-dir", type=Path, help="keep the workers' output here (default: discarded)")
    parser.set_defaults(**(QUICK if "--quick" in sys.argv else FULL))
    return parser


class Services:
    """The broker (started here if none answers) and PostgreSQL (if a store kind needs it),
    both stopped on exit if started here; fresh stores in ``folder``.

    Args:
        args: the parsed command line.
        folder: a scratch folder for stores, spools and logs.
    """

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.folder = folder
        if args.log_dir is not None:
            # Every section writes worker output to <folder>/logs: point that at the kept one.
            args.log_dir.mkdir(parents=True, exist_ok=True)
            (folder / "logs").symlink_to(args.log_dir.resolve(), target_is_directory=True)
        self.bootstrap = os.environ.get("MATIH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        self._kafka_env = {**os.environ, "KAFKA_PORT": str(broker_port(self.bootstrap))}
        self._kafka_started = False
        self.postgres: PostgresServer | None = None
        if POSTGRESQL in args.stores:
            data = ROOT / ".data" / f"bench-postgres-{args.pg_port}"
            self.postgres = PostgresServer(args.pg_port, data)
        self._stores = StoreFactory(folder, self.postgres)

    def __enter__(self) -> Services:
        host = self.bootstrap.split(",", maxsplit=1)[0].rpartition(":")[0]
        try:
            socket.create_connection((host, broker_port(self.bootstrap)), timeout=1).close()
        except OSError:
            subprocess.run([str(KAFKA_SCRIPT), "start"], check=True, env=self._kafka_env)
            self._kafka_started = True
        if self.postgres is not None:
            self.postgres.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._stores.close()
        finally:
            if self.postgres is not None:
                self.postgres.stop()
            if self._kafka_started:
                subprocess.run([str(KAFKA_SCRIPT), "stop"], check=False, env=self._kafka_env)

    @contextmanager
    def store(self, kind: str) -> Iterator[Store]:
        """A fresh store of ``kind``, deleted afterwards."""
        store = self._stores.fresh(kind)
        try:
            yield store
        finally:
            self._stores.discard(store)
