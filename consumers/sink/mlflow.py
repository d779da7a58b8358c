"""The MLflow sink: batches of run events, coalesced per run, written by the fastest
path the store allows.

On a sqlite or PostgreSQL store at a schema revision the worker was tested against,
a batch is one transaction of set-based statements (``consumers.sink.bulk``);
elsewhere (``http://`` servers, other revisions, ``write_path=api``) it goes through
MLflow's store API (``consumers.sink.store_api``). Both write the same: a differential
test holds them to what MLflow's own client reads back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from mlflow.tracking import MlflowClient

from consumers.batch import RecordRef, Rejection, RunWrites, coalesce
from consumers.experiments import TenantExperiments
from consumers.sink.base import BaseSink
from consumers.sink.bulk import BulkSqlWriter
from consumers.sink.schema import bulk_engine
from consumers.sink.store_api import StoreApiWriter
from ingest.events import Event
from ingest.settings import MlflowSettings, WritePath


class _RunWriter(Protocol):
    path: str

    def write(self, runs: list[RunWrites]) -> list[Rejection]: ...


class MlflowSink(BaseSink):
    """Writes run events to an MLflow tracking store or server.

    Args:
        settings: the tracking URI, the artifact root of new experiments, the write path.
    """

    def __init__(self, settings: MlflowSettings) -> None:
        _prepare_local_store(settings.tracking_uri)
        client = MlflowClient(tracking_uri=settings.tracking_uri)
        # Opening a new SQL store migrates its schema; do it now, before anything else
        # (the UI, another worker) opens the same fresh store and races the migration.
        client.search_experiments(max_results=1)
        experiments = TenantExperiments(client, settings.artifact_root)
        engine = (
            bulk_engine(settings.tracking_uri) if settings.write_path is WritePath.AUTO else None
        )
        self._writer: _RunWriter = (
            StoreApiWriter(client, experiments)
            if engine is None
            else BulkSqlWriter(engine, experiments)
        )
        self._held: list[tuple[Event, RecordRef | None]] = []

    @property
    def write_path(self) -> str:
        """``"bulk"`` or ``"api"``: the path this sink writes through."""
        return self._writer.path

    def add(self, event: Event, source: RecordRef | None = None) -> None:
        self._held.append((event, source))

    async def flush(self) -> list[Rejection]:
        held, self._held = self._held, []
        if not held:
            return []
        return await asyncio.to_thread(self._write, held)

    def _write(self, held: list[tuple[Event, RecordRef | None]]) -> list[Rejection]:
        return self._writer.write(coalesce(held))


def _prepare_local_store(tracking_uri: str) -> None:
    """Creates the folder of a sqlite store, which SQLAlchemy will not do."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        Path(tracking_uri.removeprefix(prefix)).parent.mkdir(parents=True, exist_ok=True)
