"""The sender in a process of its own, with no broker (a closed local port): its logs
and metrics reach the trainer's, it outlives Ctrl-C, and its death costs the trainer
one error, never an exception in the training loop."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from producers import ActiveRun, ExperimentTracker, ProducerTelemetry, RunConfig
from tests.senders import sender_pids, wait_ended
from tests.unit.producers.test_offline import offline_settings

CONFIG = RunConfig(tenant_id="acme-corp")


def offline_run(tmp_path: Path) -> tuple[ExperimentTracker, ActiveRun, int]:
    """A tracker with no broker, a run of it, and the sender process it started (other
    tests' trackers may still have theirs)."""
    before = set(sender_pids())
    tracker = ExperimentTracker(offline_settings(tmp_path))
    run = tracker.start_run("exp", CONFIG)
    (pid,) = set(sender_pids()) - before
    return tracker, run, pid


def test_the_sender_processs_warnings_reach_the_trainers_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="producers")
    tracker, run, pid = offline_run(tmp_path)
    run.log_metrics({"loss": 0.5})
    tracker.flush(1.0)
    tracker.close(1.0)
    away = [r for r in caplog.records if "is out of reach" in r.getMessage()]
    assert away, caplog.text
    assert {r.process for r in away} == {pid}
    assert {r.name for r in away} == {"producers.delivery.router"}


def test_the_sender_processs_counts_reach_the_trainers_metrics(tmp_path: Path) -> None:
    metrics = ProducerTelemetry()
    tracker = ExperimentTracker(offline_settings(tmp_path), metrics)
    run = tracker.start_run("exp", CONFIG)
    for step in range(500):
        run.log_metrics({"loss": 1.0, "acc": 0.5}, step=step)
    report = tracker.close(1.0)
    sample = metrics.registry.get_sample_value
    assert report.spilled_points == 1000
    assert sample("matih_ingest_producer_spilled_points_total") == 1000
    assert sample("matih_ingest_producer_spool_events") == report.spooled_events


def test_ctrl_c_stops_the_trainer_not_its_sender_process(tmp_path: Path) -> None:
    tracker, run, pid = offline_run(tmp_path)
    tracker.flush(0.1)  # answered: the sender process has started
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.3)
    for step in range(100):
        run.log_metrics({"loss": 1.0}, step=step)
    run.end()
    report = tracker.close(1.0)
    assert report.spooled_points == 100
    wait_ended([pid])


def test_a_dead_sender_process_costs_one_error_and_no_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker, run, pid = offline_run(tmp_path)
    run.log_metrics({"loss": 1.0}, step=0)
    tracker.flush(0.2)
    with caplog.at_level(logging.WARNING, logger="producers"):
        os.kill(pid, signal.SIGKILL)
        wait_ended([pid])
        deadline = time.monotonic() + 5
        while "ended (exit code -9)" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.02)
        for step in range(1, 101):
            run.log_metrics({"loss": 1.0}, step=step)  # never raises into the loop
        started = time.monotonic()
        report = tracker.flush(0.2)
        assert time.monotonic() - started < 1.0
        run.end()
        tracker.close(0.2)
    assert report.dropped_points == 100
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"the sender process {pid} ended (exit code -9)" in line for line in errors)


def test_a_sender_process_that_cannot_start_leaves_the_trainer_a_sender_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python-here"))
    tracker = ExperimentTracker(offline_settings(tmp_path))
    with caplog.at_level(logging.WARNING, logger="producers"):
        run = tracker.start_run("exp", CONFIG)
    assert "cannot start the SDK's sender process" in caplog.text
    for step in range(10):
        run.log_metrics({"loss": 1.0}, step=step)
    run.end()
    assert tracker.close(1.0).spooled_points == 10
