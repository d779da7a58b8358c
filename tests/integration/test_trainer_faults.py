"""Delivery under faults (issue 4, trainer side): a broker outage mid-run, a broker that
never comes back, and four processes logging to one run. Each test asserts the exact
metric history, params, tags and status MLflow holds afterwards."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from consumers import ConsumerSettings
from ingest import codec
from ingest.events import MetricsColumns
from ingest.ids import new_run_id
from ingest.settings import KafkaSettings, MlflowSettings
from producers import ExperimentTracker, ProducerSettings, RunConfig
from producers.spool.directory import EventSpool
from tests.integration.outage import ROOT, OutageBroker, wait_for_run
from tests.integration.secure import kafka_env, security_fields
from tests.integration.support import WorkerThread, free_port
from tests.integration.trainers import BASE_TS, KEYS, rank_main, value
from tests.senders import sender_pids, wait_ended

pytestmark = pytest.mark.integration


def expected_history(steps: range, rank: int | None = None) -> dict[str, Any]:
    prefix = "" if rank is None else f"rank{rank}_"
    return {
        f"{prefix}{key}": [(s, BASE_TS + s, value(i, s, rank or 0)) for s in steps]
        for i, key in enumerate(KEYS)
    }


def spool_flush(spool_root: Path, kafka: KafkaSettings, env: dict[str, str]) -> str:
    """``matih-ingest spool flush`` of ``spool_root``, as an operator runs it; its output."""
    flushed = subprocess.run(
        [
            *[sys.executable, "-m", "ingest.cli.main", "spool", "flush"],
            *["--spool-dir", str(spool_root)],
            *["--bootstrap-servers", kafka.bootstrap_servers, "--timeout", "60"],
        ],
        capture_output=True,
        text=True,
        env={**env, **kafka_env(kafka)},
        timeout=120,
        check=False,
    )
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    return flushed.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_20s_broker_outage_mid_run_loses_and_duplicates_nothing(
    outage_broker: OutageBroker,
    mlflow_settings: MlflowSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker stops for 20 s while the trainer keeps logging, then returns: every
    point lands once with its client timestamp, params and tags too, status FINISHED,
    and the spool drains by itself and is removed."""
    caplog.set_level(logging.INFO, logger="producers")
    kafka = KafkaSettings(
        bootstrap_servers=outage_broker.bootstrap,
        topic=f"outage-{new_run_id()[:12]}.events",
        consumer_group=f"outage-{new_run_id()[:12]}",
    )
    worker = WorkerThread(
        ConsumerSettings(kafka=kafka, mlflow=mlflow_settings, batch_timeout_ms=100)
    )
    worker.start()
    settings = ProducerSettings(
        kafka=kafka,
        mlflow=mlflow_settings,
        linger_ms=5,
        delivery_timeout_s=3.0,
        connect_timeout_s=2.0,
        spool_dir=tmp_path / "spool",
        read_wait_s=60.0,
    )
    tracker = ExperimentTracker(settings)
    run = tracker.start_run(
        "outage-exp", RunConfig(tenant_id="acme-corp", run_name="through-outage", tags={"a": "1"})
    )
    run.log_params({"lr": 0.01, "depth": 6})
    stop_logging = threading.Event()
    logged: list[int] = []

    def train() -> None:
        step = 0
        while not stop_logging.is_set():
            run.log_metrics(
                {key: value(i, step) for i, key in enumerate(KEYS)},
                step=step,
                timestamp=BASE_TS + step,
            )
            logged.append(step)
            step += 1
            time.sleep(0.01)

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        time.sleep(3)
        outage_broker.stop()
        stopped = time.monotonic()
        run.set_tags({"during": "outage"})
        time.sleep(max(20 - (time.monotonic() - stopped), 0))
        held = tracker.undelivered()
        assert held.spool_path is not None, "the outage should have opened a spool"
        assert held.spooled_events > 0, "the outage should have filled the spool"
        spooled_points = held.spooled_points
        outage_broker.start()
        back = time.monotonic()
        while tracker.undelivered().spooled_events and time.monotonic() - back < 60:
            time.sleep(0.05)  # it drains by itself
        drain_s = time.monotonic() - back
        assert tracker.undelivered().spooled_events == 0, (
            "the spool should drain by itself once Kafka is back"
        )
        time.sleep(2)  # and logging goes on, directly to Kafka again
    finally:
        stop_logging.set()
        trainer.join()
    run.end()
    report = tracker.flush(60)
    assert report.complete, report
    steps = range(len(logged))
    assert list(logged) == list(steps)
    try:
        runs = wait_for_run(
            mlflow_settings.tracking_uri,
            "acme-corp",
            run.run_id,
            lambda r: (
                r["status"] == "FINISHED"
                and all(len(r["history"].get(k, [])) == len(steps) for k in KEYS)
            ),
        )
    finally:
        tracker.close(5)
        worker.stop()
    assert list(runs) == [run.run_id]
    got = runs[run.run_id]
    assert got["history"] == expected_history(steps)
    assert got["params"] == {"lr": "0.01", "depth": "6"}
    assert got["tags"]["a"] == "1"
    assert got["tags"]["during"] == "outage"
    assert got["tags"]["mlflow.runName"] == "through-outage"
    assert got["status"] == "FINISHED"
    assert got["end_time"] == run.end_time
    assert not any((tmp_path / "spool").iterdir()), "a delivered spool is removed"
    print(
        f"\noutage: {len(steps)} steps, {spooled_points} points spooled at the 20 s mark;"
        f" broker back -> spool drained in {drain_s:.2f}s"
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_trainer_killed_mid_spill_leaves_a_spool_that_spool_flush_delivers_exactly_once(
    kafka_settings: KafkaSettings,
    mlflow_settings: MlflowSettings,
    worker: WorkerThread,
    tmp_path: Path,
) -> None:
    """A trainer that outruns its sender spills to the spool; SIGKILLed while it does,
    together with its sender process (as when a pod is killed), it leaves a spool whose
    every point ``matih-ingest spool flush`` delivers, and MLflow holds each logged
    point at most once, with its exact value and timestamp."""
    spool_root = tmp_path / "spool"
    run_id = new_run_id()
    spec = {
        "role": "spill",
        "bootstrap": kafka_settings.bootstrap_servers,
        "topic": kafka_settings.topic,
        "spool_dir": str(spool_root),
        "tenant": "acme-corp",
        "run_id": run_id,
        "spill_points": 20_000,
        "security": security_fields(kafka_settings),
    }
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    trainer = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.trainers", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        assert trainer.stdout is not None
        ready, _, _ = select.select([trainer.stdout], [], [], 120)
        assert ready, "the trainer should have spilled within 2 minutes"
        assert trainer.stdout.readline().strip() == "spilling"
        time.sleep(0.3)  # still logging, still spilling
    finally:
        senders = sender_pids(trainer.pid)
        for pid in (trainer.pid, *senders):  # all of it, as when a pod is killed
            os.kill(pid, signal.SIGKILL)
        trainer.wait(30)
    wait_ended(senders)

    (spool_dir,) = list(spool_root.iterdir())
    spool = EventSpool(spool_dir, max_bytes=2**40)  # its owner is dead: the lock is free
    held: dict[tuple[str, int], tuple[int, float]] = {}
    for record in spool.read(10**9):
        event = codec.decode(record.value)
        if isinstance(event, MetricsColumns):
            held.update({(p.key, p.step): (p.timestamp, p.value) for p in event.rows()})
    events = spool.events
    spool.close()
    assert held, "the kill should have left points in the spool"

    assert f"delivered {events} events" in spool_flush(spool_root, kafka_settings, env)
    assert not spool_dir.exists()

    def rows(run: dict[str, Any]) -> set[tuple[str, int, int, float]]:
        return {
            (key, step, timestamp, got)
            for key, history in run["history"].items()
            for step, timestamp, got in history
        }

    wanted = {(key, step, ts, got) for (key, step), (ts, got) in held.items()}
    runs = wait_for_run(
        mlflow_settings.tracking_uri, "acme-corp", run_id, lambda r: wanted <= rows(r), 120
    )
    history = runs[run_id]["history"]
    assert wanted <= rows(runs[run_id]), "every point the spool held is in MLflow"
    for i, key in enumerate(KEYS):
        steps = [step for step, _, _ in history[key]]
        assert len(steps) == len(set(steps)), f"{key}: a point is in MLflow twice"
        assert all(
            (ts, got) == (BASE_TS + step, value(i, step)) for step, ts, got in history[key]
        ), f"{key}: a value or timestamp differs from what was logged"
    print(
        f"\nkilled mid-spill: the spool held {len(held):,} points in {events} events;"
        f" MLflow holds {sum(len(h) for h in history.values()):,}, each once"
    )


def test_a_trainer_killed_outright_has_its_sender_process_deliver_all_it_logged(
    kafka_settings: KafkaSettings,
    mlflow_settings: MlflowSettings,
    worker: WorkerThread,
    tmp_path: Path,
) -> None:
    """SIGKILL of the trainer alone (an OOM kill, a crash in native code), before it
    flushed or ended its run: its sender process reads what the trainer logged from
    their shared ring, delivers it and exits. MLflow holds every point exactly, the
    params and tags, and the run still running (no one ended it)."""
    run_id = new_run_id()
    spec = {
        "role": "crash",
        "bootstrap": kafka_settings.bootstrap_servers,
        "topic": kafka_settings.topic,
        "spool_dir": str(tmp_path / "spool"),
        "tenant": "acme-corp",
        "run_id": run_id,
        "steps": 5000,
        "security": security_fields(kafka_settings),
    }
    trainer = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.trainers", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert trainer.stdout is not None
        ready, _, _ = select.select([trainer.stdout], [], [], 120)
        assert ready, "the trainer should have logged within 2 minutes"
        assert trainer.stdout.readline().strip() == "logged"
        (sender,) = sender_pids(trainer.pid)
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(30)
    wait_ended([sender])  # it delivered, then ended

    runs = wait_for_run(
        mlflow_settings.tracking_uri,
        "acme-corp",
        run_id,
        lambda r: len(r["history"].get("val_f1", [])) == 5000,
        120,
    )
    got = runs[run_id]
    assert got["history"] == expected_history(range(5000))
    assert got["params"] == {"lr": "0.01"}
    assert got["tags"]["phase"] == "crash"
    assert got["status"] == "RUNNING"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_trainer_whose_broker_never_returns_exits_in_time_and_spool_flush_delivers_it(
    kafka_settings: KafkaSettings,
    mlflow_settings: MlflowSettings,
    worker: WorkerThread,
    tmp_path: Path,
) -> None:
    """A trainer process with no broker closes within its timeout (plus slack), says in
    one line what it left and where; ``matih-ingest spool flush`` later delivers that
    spool exactly and removes it."""
    spool_root = tmp_path / "spool"
    run_id = new_run_id()
    spec = {
        "bootstrap": f"127.0.0.1:{free_port()}",
        "topic": kafka_settings.topic,
        "spool_dir": str(spool_root),
        "tenant": "acme-corp",
        "run_id": run_id,
        "steps": 300,
        "flush_timeout_s": 3.0,
        "delivery_timeout_s": 2.0,
        "connect_timeout_s": 1.0,
    }
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.trainers", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nclose with a dead broker: {result['close_s']:.2f}s for a 3.0s timeout")
    assert result["close_s"] <= 3.0 + 1.0
    assert result["spooled_points"] == 300 * 4
    spool_path = result["spool_path"]
    assert Path(spool_path).is_dir()
    closing = [line for line in done.stderr.splitlines() if "closing with" in line]
    assert len(closing) == 1, done.stderr
    assert spool_path in closing[0]
    assert "matih-ingest spool flush" in closing[0]

    cli = [sys.executable, "-m", "ingest.cli.main", "spool"]
    listed = subprocess.run(
        [*cli, "list", "--spool-dir", str(spool_root)],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "400"},
        check=True,
        timeout=60,
    )
    assert "gone" in listed.stdout
    flushed = spool_flush(spool_root, kafka_settings, env)
    assert f"delivered {result['spooled_events']} events" in flushed
    assert not Path(spool_path).exists()

    runs = wait_for_run(
        mlflow_settings.tracking_uri,
        "acme-corp",
        run_id,
        lambda r: r["status"] == "FINISHED" and len(r["history"].get("val_f1", [])) == 300,
    )
    assert list(runs) == [run_id]
    got = runs[run_id]
    assert got["history"] == expected_history(range(300))
    assert got["params"] == {"lr": "0.01", "depth": "6"}
    assert {k: got["tags"][k] for k in ("site", "phase", "mlflow.runName")} == {
        "site": "edge",
        "phase": "offline",
        "mlflow.runName": "offline",
    }
    assert got["status"] == "FINISHED"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_four_processes_logging_to_one_run_land_in_one_run_exactly(
    producer_settings: ProducerSettings, worker: WorkerThread, tmp_path: Path
) -> None:
    """Four OS processes (spawned), rank 0 starting and ending the run and ranks 1-3
    joining it, each with its own keys: one MLflow run with the exact merged history,
    every rank's param and tag, rank 0's name and status."""
    run_id = new_run_id()
    spec: dict[str, Any] = {
        "bootstrap": producer_settings.kafka.bootstrap_servers,
        "topic": producer_settings.kafka.topic,
        "security": security_fields(producer_settings.kafka),
        "spool_dir": str(tmp_path / "spool"),
        "tenant": "acme-corp",
        "run_id": run_id,
        "steps": 200,
    }
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    ranks = [context.Process(target=rank_main, args=(spec, rank, barrier)) for rank in range(4)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(180)
    assert [process.exitcode for process in ranks] == [0, 0, 0, 0]
    assert not (tmp_path / "spool").exists(), "a healthy broker needs no spool"

    want: dict[str, Any] = {}
    for rank in range(4):
        want.update(expected_history(range(200), rank))
    runs = wait_for_run(
        worker.settings.mlflow.tracking_uri,
        "acme-corp",
        run_id,
        lambda r: (
            r["status"] == "FINISHED" and all(len(r["history"].get(k, [])) == 200 for k in want)
        ),
    )
    assert list(runs) == [run_id]
    got = runs[run_id]
    assert got["history"] == want
    assert got["params"] == {f"rank{r}_batch": str(32 * (r + 1)) for r in range(4)}
    for rank in range(4):
        assert got["tags"][f"rank{rank}_host"] == f"node-{rank}"
    assert got["tags"]["launcher"] == "torchrun"
    assert got["tags"]["mlflow.runName"] == "ddp"
    assert got["status"] == "FINISHED"
