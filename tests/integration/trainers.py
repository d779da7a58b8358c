"""Trainers that run in processes of their own: ranks of one run, one whose broker is
gone, one that outruns its sender until it is killed, and one killed outright.
Top-level functions, so that ``multiprocessing`` with spawn can start them."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from ingest.settings import KafkaSettings, MlflowSettings
from producers import ExperimentTracker, ProducerSettings, RunConfig

KEYS = ("train_loss", "val_loss", "val_accuracy", "val_f1")
BASE_TS = 1_750_000_000_000


def value(key_index: int, step: int, rank: int = 0) -> float:
    """A value no other (rank, key, step) shares, with a fractional part to round-trip."""
    return round(rank * 10 + key_index + 1.0 / (step + 1), 9)


def settings_from(spec: dict[str, Any]) -> ProducerSettings:
    return ProducerSettings(
        kafka=KafkaSettings(
            bootstrap_servers=spec["bootstrap"], topic=spec["topic"], **spec.get("security", {})
        ),
        mlflow=MlflowSettings(tracking_uri=spec.get("tracking_uri", "sqlite:///unused.db")),
        linger_ms=5,
        spool_dir=spec["spool_dir"],
        flush_timeout_s=spec.get("flush_timeout_s", 15.0),
        delivery_timeout_s=spec.get("delivery_timeout_s", 5.0),
        connect_timeout_s=spec.get("connect_timeout_s", 2.0),
    )


def log_steps(run: Any, steps: int) -> None:
    """Logs ``steps`` steps of the four keys, each value and timestamp one of its own."""
    for step in range(steps):
        run.log_metrics(
            {key: value(i, step) for i, key in enumerate(KEYS)},
            step=step,
            timestamp=BASE_TS + step,
        )


def rank_main(spec: dict[str, Any], rank: int, barrier: Any) -> None:
    """One rank of four: rank 0 starts and ends the run, the others join it; each logs
    its own keys, a param and a tag; rank 0 ends only after every rank flushed."""
    tracker = ExperimentTracker(settings_from(spec))
    config = RunConfig(tenant_id=spec["tenant"], run_name="ddp", tags={"launcher": "torchrun"})
    if rank == 0:
        run = tracker.start_run("ddp-exp", config, run_id=spec["run_id"])
    else:
        run = tracker.join_run("ddp-exp", spec["run_id"], config)
    run.log_params({f"rank{rank}_batch": 32 * (rank + 1)})
    run.set_tags({f"rank{rank}_host": f"node-{rank}"})
    for step in range(spec["steps"]):
        run.log_metrics(
            {f"rank{rank}_{key}": value(i, step, rank) for i, key in enumerate(KEYS)},
            step=step,
            timestamp=BASE_TS + step,
        )
    report = tracker.flush(30.0)
    assert report.complete, report
    barrier.wait(60)
    run.end()
    assert tracker.close(30.0).complete


def orphan_main(spec: dict[str, Any]) -> None:
    """Logs a whole run to a broker that never answers, closes, and prints how long the
    close took and what it left (as JSON on stdout)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    tracker = ExperimentTracker(settings_from(spec))
    run = tracker.start_run(
        "orphan-exp",
        RunConfig(tenant_id=spec["tenant"], run_name="offline", tags={"site": "edge"}),
        run_id=spec["run_id"],
    )
    run.log_params({"lr": 0.01, "depth": 6})
    run.set_tags({"phase": "offline"})
    log_steps(run, spec["steps"])
    run.end()
    started = time.monotonic()
    report = tracker.close(spec["flush_timeout_s"])
    print(
        json.dumps(
            {
                "close_s": time.monotonic() - started,
                "spooled_events": report.spooled_events,
                "spooled_points": report.spooled_points,
                "spool_path": report.spool_path,
            }
        )
    )


def spill_main(spec: dict[str, Any]) -> None:
    """Logs as fast as it can within a 1 MiB memory bound, so that the sender spills to
    the spool; says ``spilling`` on stdout once the spool took ``spill_points`` points,
    and goes on logging until it is killed."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(message)s")
    settings = settings_from(spec).model_copy(update={"memory_bytes": 1024 * 1024})
    tracker = ExperimentTracker(settings)
    run = tracker.start_run(
        "spill-exp", RunConfig(tenant_id=spec["tenant"], run_name="spill"), run_id=spec["run_id"]
    )
    said = False
    step = 0
    while True:
        run.log_metrics(
            {key: value(i, step) for i, key in enumerate(KEYS)},
            step=step,
            timestamp=BASE_TS + step,
        )
        step += 1
        spilled = not said and step % 1000 == 0 and tracker.undelivered().spilled_points
        if spilled and spilled >= spec["spill_points"]:
            print("spilling", flush=True)
            said = True


def crash_main(spec: dict[str, Any]) -> None:
    """Logs a run's params, tags and ``steps`` steps, says ``logged`` on stdout without
    flushing or ending the run, and waits to be killed."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(message)s")
    tracker = ExperimentTracker(settings_from(spec))
    run = tracker.start_run(
        "crash-exp", RunConfig(tenant_id=spec["tenant"], run_name="crash"), run_id=spec["run_id"]
    )
    run.log_params({"lr": 0.01})
    run.set_tags({"phase": "crash"})
    log_steps(run, spec["steps"])
    print("logged", flush=True)
    time.sleep(600)


ROLES = {"spill": spill_main, "crash": crash_main, "orphan": orphan_main}

if __name__ == "__main__":
    given = json.loads(sys.argv[1])
    ROLES[given.get("role", "orphan")](given)
