"""The bulk write path when the store itself refuses something the contract let
through: the one event is isolated and rejected with the store's reason, the rest of
its batch is written, and nothing is committed twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy

from consumers import MlflowSink
from consumers.batch import RecordRef
from ingest.events import (
    Event,
    MetricPoint,
    MetricsLogged,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
)
from ingest.ids import new_run_id, run_id_time_ms
from ingest.settings import MlflowSettings
from tests.integration.support import snapshot

pytestmark = pytest.mark.integration

TENANT = "acme-corp"


def refuse_metric_key(tracking_uri: str, key: str) -> None:
    """Makes the store refuse every metric row of ``key``, as a constraint would."""
    engine = sqlalchemy.create_engine(tracking_uri)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON metrics"
            f" WHEN NEW.key = '{key}' BEGIN SELECT RAISE(ABORT, 'refused by the store'); END"
        )
    engine.dispose()


async def test_an_event_the_store_refuses_is_isolated_and_the_rest_is_written(
    new_sqlite_store: Callable[[str], str], tmp_path: Path
) -> None:
    uri = new_sqlite_store("refusing")
    refuse_metric_key(uri, "poison")
    sink = MlflowSink(MlflowSettings(tracking_uri=uri, artifact_root=str(tmp_path / "art")))
    assert sink.write_path == "bulk"
    run_id = new_run_id()
    start = run_id_time_ms(run_id) or 0
    base = {"tenant_id": TENANT, "run_id": run_id, "experiment_name": "faults"}

    def points(key: str, steps: range) -> MetricsLogged:
        return MetricsLogged(
            **base,
            metrics=tuple(
                MetricPoint(key=key, value=s * 0.5, step=s, timestamp=start + s) for s in steps
            ),
        )

    poison = points("poison", range(3))
    events: list[Event] = [
        RunCreated(**base, run_name="refusing", start_time=start),
        points("loss", range(0, 10)),
        poison,
        points("loss", range(10, 20)),
        ParamsLogged(**base, params={"lr": "0.01"}),
        RunEnded(**base, status=RunStatus.FINISHED, end_time=start + 1000),
    ]
    for offset, event in enumerate(events):
        sink.add(event, RecordRef("events", 0, offset))
    rejections = await sink.flush()

    assert [(r.event, r.source) for r in rejections] == [(poison, RecordRef("events", 0, 2))]
    assert "refused by the store" in rejections[0].reason
    (run,) = snapshot(uri, TENANT).values()
    assert run["mlflow_run_id"] == run_id
    assert run["history"] == {"loss": [(s, start + s, s * 0.5) for s in range(20)]}
    assert run["params"] == {"lr": "0.01"}
    assert (run["status"], run["end_time"]) == ("FINISHED", start + 1000)
