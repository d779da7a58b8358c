"""The SDK with no broker at all (a closed local port): logging stays fast, closing
keeps its time bound, and the spool holds exactly what was logged."""

from __future__ import annotations

import logging
import socket
import statistics
import time
from pathlib import Path

import pytest

from ingest import codec
from ingest.events import MetricsColumns, ParamsLogged, RunCreated, RunEnded, TagsSet
from ingest.settings import KafkaSettings
from producers import ExperimentTracker, ProducerSettings, RunConfig
from producers.spool.directory import EventSpool


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def offline_settings(tmp_path: Path, sender: str = "process") -> ProducerSettings:
    return ProducerSettings(
        sender=sender,
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{closed_port()}", topic="t.events"),
        linger_ms=5,
        connect_timeout_s=0.5,
        flush_timeout_s=1.0,
        spool_dir=tmp_path / "spool",
    )


@pytest.mark.parametrize("sender", ["process", "thread"])
def test_close_without_a_broker_keeps_its_bound_and_spools_exactly_what_was_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sender: str
) -> None:
    tracker = ExperimentTracker(offline_settings(tmp_path, sender))
    run = tracker.start_run("exp", RunConfig(tenant_id="acme-corp", run_name="offline"))
    run.log_params({f"p{i}": i for i in range(150)})  # two events of at most 100
    run.set_tags({"phase": "offline"})
    for step in range(100):
        values = {"loss": 1 / (step + 1), "acc": step / 100}
        run.log_metrics(values, step=step, timestamp=1000 + step)
    run.end()
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="producers"):
        report = tracker.close(2.0)
    elapsed = time.monotonic() - started
    assert elapsed <= 2.0 + 0.6
    assert report.spooled_points == 200
    assert report.buffered_calls == report.unsent_events == report.in_flight == 0
    lines = [r.getMessage() for r in caplog.records if "closing with" in r.getMessage()]
    assert len(lines) == 1
    assert report.spool_path in lines[0]
    assert "matih-ingest spool flush" in lines[0]

    spool = EventSpool(Path(report.spool_path), max_bytes=10_000_000)
    records = spool.read(10_000)
    events = [codec.decode(record.value) for record in records]
    assert isinstance(events[0], RunCreated)
    assert [len(e.params) for e in events if isinstance(e, ParamsLogged)] == [100, 50]
    assert [e.tags for e in events if isinstance(e, TagsSet)] == [{"phase": "offline"}]
    points = [p for e in events if isinstance(e, MetricsColumns) for p in e.rows()]
    assert [(p.key, p.step, p.timestamp, p.value) for p in points] == [
        (key, step, 1000 + step, value)
        for step in range(100)
        for key, value in (("loss", 1 / (step + 1)), ("acc", step / 100))
    ]
    assert isinstance(events[-1], RunEnded)
    assert len({e.event_id for e in events}) == len(events)
    assert spool.owner()["topic"] == "t.events"


def test_logging_stays_microseconds_while_the_broker_is_gone(tmp_path: Path) -> None:
    """The spool is written by the sender process, never on the caller's thread."""
    tracker = ExperimentTracker(offline_settings(tmp_path))
    run = tracker.start_run("exp", RunConfig(tenant_id="acme-corp"))
    took = []
    for step in range(20_000):
        started = time.perf_counter_ns()
        run.log_metrics({"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}, step)
        took.append(time.perf_counter_ns() - started)
    tracker.close(0.5)
    assert statistics.median(took) / 1000 <= 20.0


def test_a_joined_rank_publishes_neither_run_created_nor_run_ended(tmp_path: Path) -> None:
    """Ranks other than 0 log into the shared run; its name, tags and status stay rank 0's."""
    tracker = ExperimentTracker(offline_settings(tmp_path))
    shared = "0192f0c1a2b37c4d8e9fa0b1c2d3e4f5"
    with tracker.join_run("exp", shared, RunConfig(tenant_id="acme-corp")) as run:
        run.log_params({"rank1_batch": 64})
        run.log_metrics({"rank1_loss": 0.5}, step=3)
    report = tracker.close(0.5)
    records = EventSpool(Path(report.spool_path), max_bytes=10_000_000).read(100)
    events = [codec.decode(record.value) for record in records]
    assert [type(event) for event in events] == [ParamsLogged, MetricsColumns]
    assert {event.run_id for event in events} == {shared}
    assert all(event.experiment_name == "exp" for event in events)
