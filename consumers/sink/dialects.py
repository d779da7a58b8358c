"""What differs between the SQL dialects the bulk path writes: the upsert construct, and
the fastest way to insert many metric rows.

Metric rows are most of every batch, so they skip SQLAlchemy's per-row parameter
handling (a microsecond or more a row). On PostgreSQL they are copied in binary into a
temporary table and inserted from there in one statement: 0.2 µs of client CPU a row,
where psycopg's ``executemany`` sends one statement a row (8-12 µs) and an
``unnest`` of six arrays spends 2.3 µs formatting them. On sqlite the compiled
statement runs through the driver's ``executemany`` with plain tuples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from consumers.sink.schema import METRICS

METRIC_COLUMNS = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")
"""The metric row's columns, in the order ``MetricRowsWriter`` takes them."""

Upsert = Callable[[sqlalchemy.Table], Any]
MetricRowsWriter = Callable[[sqlalchemy.Connection, list[list[Any]]], None]
"""Inserts metric rows given as one list per column (``METRIC_COLUMNS``' order),
ignoring rows already stored."""


def upsert_for(engine: sqlalchemy.Engine) -> Upsert:
    """The dialect's ``insert`` with ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def metric_rows_writer(engine: sqlalchemy.Engine) -> MetricRowsWriter:
    """The dialect's fastest metric-row insert."""
    if engine.dialect.name == "postgresql":
        return _copy_insert()
    return _executemany_insert(engine)


def _copy_insert() -> MetricRowsWriter:
    # COPY has no SQLAlchemy construct and no ON CONFLICT: rows are copied (binary) into a
    # temporary table of the transaction, then inserted from it skipping stored ones.
    staging = sqlalchemy.Table(
        "matih_metric_rows",
        sqlalchemy.MetaData(),
        *(sqlalchemy.Column(name, METRICS.c[name].type) for name in METRIC_COLUMNS),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )
    create = sqlalchemy.schema.CreateTable(staging, if_not_exists=True)
    copy = f"COPY {staging.name} ({', '.join(METRIC_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    types = ["varchar", "float8", "int8", "int8", "bool", "varchar"]
    insert = (
        postgresql.insert(METRICS)
        .from_select(list(METRIC_COLUMNS), select(*staging.c))
        .on_conflict_do_nothing()
    )

    def write(connection: sqlalchemy.Connection, columns: list[list[Any]]) -> None:
        connection.execute(create)
        driver = connection.connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(copy) as rows:  # type: ignore[union-attr]
            rows.set_types(types)
            for row in zip(*columns, strict=True):
                rows.write_row(row)
        connection.execute(insert)

    return write


def _executemany_insert(engine: sqlalchemy.Engine) -> MetricRowsWriter:
    compiled = (
        sqlite.insert(METRICS)
        .on_conflict_do_nothing()
        .compile(dialect=engine.dialect, column_keys=list(METRIC_COLUMNS))
    )
    order = [METRIC_COLUMNS.index(name) for name in compiled.positiontup or ()]
    sql = str(compiled)

    def write(connection: sqlalchemy.Connection, columns: list[list[Any]]) -> None:
        ordered = [columns[index] for index in order]
        connection.exec_driver_sql(sql, list(zip(*ordered, strict=True)))

    return write
