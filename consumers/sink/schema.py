"""MLflow's SQL schema, as the bulk write path may touch it.

The tables are MLflow's own SQLAlchemy definitions. The bulk path writes them only
when the store's alembic revision is one it was built and tested against: a store
migrated by another MLflow version is written through MLflow's store API instead.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy
from mlflow.store.tracking.dbmodels.models import (
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)

logger = logging.getLogger(__name__)

TESTED_REVISIONS = frozenset({"dc11669786a5", "f4a9b2c7d1e6"})
"""MLflow schema revisions the bulk path was proven against: the heads of MLflow 3.17
and 3.18 (3.18's migrations add skill and issue tables and change MCP version columns;
the run tables the bulk path writes are as in 3.17)."""

SQL_SCHEMES = ("sqlite", "postgresql")
"""Stores the bulk path writes: the dialects its statements are tested on."""

RUNS: sqlalchemy.Table = SqlRun.__table__
TAGS: sqlalchemy.Table = SqlTag.__table__
PARAMS: sqlalchemy.Table = SqlParam.__table__
METRICS: sqlalchemy.Table = SqlMetric.__table__
LATEST_METRICS: sqlalchemy.Table = SqlLatestMetric.__table__


def bulk_engine(tracking_uri: str) -> sqlalchemy.Engine | None:
    """An engine for the bulk path on ``tracking_uri``, or None where the store must be
    written through MLflow's API (not SQL, another dialect, an untested revision)."""
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0]
    if scheme not in SQL_SCHEMES:
        return None
    if scheme == "sqlite":
        # Another worker's transaction holds the lock for well under a second; a write
        # waits this long for it before it counts as the store being unavailable.
        engine = sqlalchemy.create_engine(tracking_uri, connect_args={"timeout": 30})
        _lock_on_begin(engine)
    else:
        engine = sqlalchemy.create_engine(tracking_uri, pool_pre_ping=True)
    with engine.connect() as connection:
        revision = connection.execute(
            sqlalchemy.text("SELECT version_num FROM alembic_version")
        ).scalar()
    if revision not in TESTED_REVISIONS:
        logger.warning(
            "the MLflow store is at schema revision %s, which this worker was not tested"
            " against (%s): writing through MLflow's store API, which is slower",
            revision,
            ", ".join(sorted(TESTED_REVISIONS)),
        )
        engine.dispose()
        return None
    return engine


def _lock_on_begin(engine: sqlalchemy.Engine) -> None:
    """SQLite: take the write lock when a transaction begins (BEGIN IMMEDIATE).

    A deferred transaction that reads first and writes later can fail at once with
    'database is locked' when another writer holds the lock; an immediate one waits
    for it (the driver's busy timeout). This is SQLAlchemy's documented recipe.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection: sqlalchemy.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
