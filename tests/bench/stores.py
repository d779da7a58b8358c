"""Fresh MLflow stores for each measurement: sqlite files and PostgreSQL databases.

Creating MLflow's tables takes seconds (about 7 s for sqlite on 2 cores), so each
kind is migrated once into a template and every measurement gets a copy: a file copy
for sqlite, ``CREATE DATABASE ... TEMPLATE`` for PostgreSQL. No measured window
includes a migration.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from mlflow.tracking import MlflowClient

from ingest.settings import MlflowSettings
from tests.bench.processes import ROOT, tree_cpu_seconds

POSTGRES_SCRIPT = ROOT / "deploy" / "postgres" / "postgres.sh"
SQLITE = "sqlite"
POSTGRESQL = "postgresql"


@dataclass(frozen=True, slots=True)
class Store:
    """One fresh, empty MLflow store."""

    kind: str
    settings: MlflowSettings


class PostgresServer:
    """The project's local PostgreSQL on ``port``: started here unless one already answers,
    and then stopped here too.

    Args:
        port: the TCP port on 127.0.0.1.
        data_dir: its data folder when started here.
    """

    def __init__(self, port: int, data_dir: Path) -> None:
        self._env = {**os.environ, "PG_PORT": str(port), "PG_DATA_DIR": str(data_dir)}
        self._port = port
        self._started_here = False
        self._postmaster: int | None = None
        self.server_url = f"postgresql://postgres@127.0.0.1:{port}"

    def start(self) -> None:
        """Starts the server if nothing answers on its port yet."""
        try:
            socket.create_connection(("127.0.0.1", self._port), timeout=1).close()
        except OSError:
            subprocess.run([str(POSTGRES_SCRIPT), "start"], check=True, env=self._env)
            self._started_here = True

    def stop(self) -> None:
        """Stops the server if it was started here."""
        if self._started_here:
            subprocess.run([str(POSTGRES_SCRIPT), "stop"], check=False, env=self._env)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Creates database ``name`` (a copy of ``template`` if given); returns its URL."""
        engine = sqlalchemy.create_engine(
            f"{self.server_url}/postgres", isolation_level="AUTOCOMMIT"
        )
        copy = f' template "{template}"' if template else ""
        with engine.connect() as connection:
            if template:
                # A template must have no other session; MLflow's client keeps a pool open.
                connection.execute(
                    sqlalchemy.text(
                        "select pg_terminate_backend(pid) from pg_stat_activity"
                        " where datname = :name and pid <> pg_backend_pid()"
                    ),
                    {"name": template},
                )
            connection.execute(sqlalchemy.text(f'create database "{name}"{copy}'))
        engine.dispose()
        return f"{self.server_url}/{name}"

    def drop_database(self, name: str) -> None:
        """Drops database ``name``, ending any session still on it."""
        engine = sqlalchemy.create_engine(
            f"{self.server_url}/postgres", isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'drop database if exists "{name}" with (force)'))
        engine.dispose()

    def postmaster_pid(self) -> int:
        """The server's main process: the parent of the backend serving a connection."""
        if self._postmaster is None:
            engine = sqlalchemy.create_engine(f"{self.server_url}/postgres")
            with engine.connect() as connection:
                backend = connection.execute(
                    sqlalchemy.text("select pg_backend_pid()")
                ).scalar_one()
                # Read while connected: the backend exits with the connection.
                stat = Path(f"/proc/{int(backend)}/stat").read_text()
            engine.dispose()
            self._postmaster = int(stat.rpartition(")")[2].split()[1])
        return self._postmaster

    def cpu_seconds(self) -> float:
        """CPU used so far by the server and every backend it forked."""
        return tree_cpu_seconds(self.postmaster_pid())


class StoreFactory:
    """Hands out fresh stores of each kind, copies of a template migrated once.

    Args:
        folder: where sqlite files and artifacts go.
        postgres: the PostgreSQL server, if PostgreSQL stores are wanted.
    """

    def __init__(self, folder: Path, postgres: PostgresServer | None) -> None:
        self._folder = folder
        self._postgres = postgres
        self._sqlite_template: Path | None = None
        self._pg_template: str | None = None

    def fresh(self, kind: str) -> Store:
        """A new empty store of ``kind`` (``sqlite`` or ``postgresql``)."""
        name = f"bench_{uuid.uuid4().hex[:10]}"
        artifacts = str(self._folder / f"{name}-artifacts")
        if kind == SQLITE:
            path = self._folder / f"{name}.db"
            shutil.copy(self._sqlite_template_path(), path)
            return Store(
                kind, MlflowSettings(tracking_uri=f"sqlite:///{path}", artifact_root=artifacts)
            )
        assert self._postgres is not None, "no PostgreSQL server"
        url = self._postgres.create_database(name, self._pg_template_name())
        return Store(kind, MlflowSettings(tracking_uri=url, artifact_root=artifacts))

    def discard(self, store: Store) -> None:
        """Deletes a store no longer needed (its sessions, its file or database)."""
        if store.kind == SQLITE:
            Path(store.settings.tracking_uri.removeprefix("sqlite:///")).unlink(missing_ok=True)
        elif self._postgres is not None:
            self._postgres.drop_database(store.settings.tracking_uri.rpartition("/")[2])
        shutil.rmtree(store.settings.artifact_root, ignore_errors=True)

    def close(self) -> None:
        """Drops the PostgreSQL template, if one was made."""
        if self._postgres is not None and self._pg_template is not None:
            self._postgres.drop_database(self._pg_template)

    def _sqlite_template_path(self) -> Path:
        if self._sqlite_template is None:
            path = self._folder / "template.db"
            MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
            self._sqlite_template = path
        return self._sqlite_template

    def _pg_template_name(self) -> str:
        if self._pg_template is None:
            assert self._postgres is not None
            name = f"bench_template_{uuid.uuid4().hex[:8]}"
            url = self._postgres.create_database(name)
            MlflowClient(tracking_uri=url).search_experiments()
            self._pg_template = name
        return self._pg_template
