"""The buffer between the training loop and the sender: order, packing, bounds."""

from __future__ import annotations

import logging

import pytest

from ingest.events import MetricsLogged, ParamsLogged
from ingest.ids import new_run_id
from producers.delivery.buffer import EventBuffer, RunIdentity, pack

A = RunIdentity("acme-corp", new_run_id(), "exp")
B = RunIdentity("acme-corp", new_run_id(), "exp")


def params(run: RunIdentity, value: str) -> ParamsLogged:
    return ParamsLogged(
        tenant_id=run.tenant_id, run_id=run.run_id, experiment_name="exp", params={"p": value}
    )


def test_metric_calls_pack_into_events_of_at_most_1000_points() -> None:
    buffer = EventBuffer(max_items=10_000, full_wait_s=0)
    for step in range(600):
        buffer.add_metrics(A, step, 1, [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)])
    packed = pack(buffer.drain())
    assert [len(e.metrics) for e in packed] == [1000, 1000, 400]
    assert [p.step for e in packed for p in e.metrics if p.key == "a"] == list(range(600))


def test_each_runs_points_precede_its_next_lifecycle_event() -> None:
    buffer = EventBuffer(max_items=100, full_wait_s=0)
    buffer.add_metrics(A, 0, 1, [("loss", 1.0)])
    buffer.add_metrics(B, 0, 1, [("loss", 2.0)])
    buffer.add_event(params(A, "1"))
    buffer.add_metrics(A, 1, 1, [("loss", 0.5)])
    packed = pack(buffer.drain())
    of_a = [e for e in packed if e.run_id == A.run_id]
    assert [type(e).__name__ for e in of_a] == ["MetricsLogged", "ParamsLogged", "MetricsLogged"]
    assert [e.metrics[0].value for e in of_a if isinstance(e, MetricsLogged)] == [1.0, 0.5]
    of_b = [e for e in packed if e.run_id == B.run_id]
    assert [(type(e).__name__, e.metrics[0].value) for e in of_b] == [("MetricsLogged", 2.0)]


def test_when_full_the_oldest_metric_points_drop_and_lifecycle_events_stay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buffer = EventBuffer(max_items=3, full_wait_s=0.01)
    buffer.add_event(params(A, "1"))
    buffer.add_metrics(A, 0, 1, [("loss", 1.0), ("acc", 0.1)])
    buffer.add_metrics(A, 1, 1, [("loss", 2.0)])
    with caplog.at_level(logging.WARNING):
        buffer.add_metrics(A, 2, 1, [("loss", 3.0)])
        buffer.add_event(params(A, "2"))
    assert buffer.dropped_points == 3
    assert "dropped the oldest metric points, 2 so far" in caplog.text
    packed = pack(buffer.drain())
    assert [type(e).__name__ for e in packed] == ["ParamsLogged", "MetricsLogged", "ParamsLogged"]
    assert [p.step for p in packed[1].metrics] == [2]
