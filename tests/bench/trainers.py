"""A trainer process: one tenant, one run, ``run.log_metrics`` of four metrics a step.

    python -m tests.bench.trainers '<spec as JSON>'

Two ways to log, chosen by the spec:

- ``calls``: that many calls, as fast as the loop goes (filling a topic);
- ``rate_points_s`` and ``duration_s``: paced to that rate from the wall-clock time
  ``start_at`` for that long, or as fast as it can when it cannot keep the pace.

Prints one JSON line: the run, how many calls and points it logged, when its loop
began and ended (wall clock, to compare across processes), and what the SDK dropped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ingest.settings import KafkaSettings
from producers import ExperimentTracker, ProducerSettings, RunConfig
from tests.bench.processes import child_result, child_spec, spawn_child

KEYS = ("train_loss", "val_loss", "val_accuracy", "val_f1")
EXPERIMENT = "bench"
_PACE_SLEEP_S = 0.002


def trainer_spec(
    bootstrap: str, topic: str, tenant: str, spool_dir: Path, **how: float
) -> dict[str, Any]:
    """The spec of one trainer; ``how`` is ``calls=`` or ``rate_points_s=, duration_s=,
    start_at=``."""
    return {
        "bootstrap": bootstrap,
        "topic": topic,
        "tenant": tenant,
        "spool_dir": str(spool_dir / tenant),
        **how,
    }


def spawn_paced(
    bootstrap: str,
    topic: str,
    spool_dir: Path,
    trainers: int,
    *,
    points_s: float,
    duration_s: float,
    start_at: float,
) -> list[Any]:
    """``trainers`` processes, one tenant each, logging ``points_s`` points a second in
    all for ``duration_s`` from the wall-clock time ``start_at``."""
    return [
        spawn_child(
            __name__,
            trainer_spec(
                bootstrap,
                topic,
                f"tenant-{i}",
                spool_dir,
                rate_points_s=points_s / trainers,
                duration_s=duration_s,
                start_at=start_at,
            ),
        )
        for i in range(trainers)
    ]


def _log(run: Any, spec: dict[str, Any]) -> tuple[int, float, float]:
    """Logs as the spec says; returns calls, and wall-clock start and end of the loop."""
    calls = int(spec.get("calls", 0))
    if calls:
        began = time.time()
        for step in range(calls):
            run.log_metrics({key: step + i / 10 for i, key in enumerate(KEYS)}, step=step)
        return calls, began, time.time()
    per_s = spec["rate_points_s"] / len(KEYS)
    start_at = spec["start_at"]
    time.sleep(max(start_at - time.time(), 0))
    began = time.time()
    end_at = began + spec["duration_s"]
    step = 0
    while True:
        now = time.time()
        if now >= end_at:
            break
        due = int((now - began) * per_s) + 1
        if step >= due:
            time.sleep(_PACE_SLEEP_S)
            continue
        while step < due:
            run.log_metrics({key: step + i / 10 for i, key in enumerate(KEYS)}, step=step)
            step += 1
    return step, began, time.time()


def main() -> None:
    """Runs one trainer as its spec says and prints what it did."""
    logging.basicConfig(level=logging.WARNING)
    spec = child_spec()
    settings = ProducerSettings(
        kafka=KafkaSettings(bootstrap_servers=spec["bootstrap"], topic=spec["topic"]),
        spool_dir=spec["spool_dir"],
    )
    tracker = ExperimentTracker(settings)
    config = RunConfig(tenant_id=spec["tenant"], run_name=spec["tenant"])
    with tracker.start_run(EXPERIMENT, config) as run:
        calls, began, ended = _log(run, spec)
    report = tracker.close(60)
    child_result(
        {
            "tenant": spec["tenant"],
            "run_id": run.run_id,
            "calls": calls,
            "points": calls * len(KEYS),
            "began": began,
            "ended": ended,
            "acked": time.time(),
            "dropped_points": report.dropped_points,
            "complete": report.complete,
        }
    )


if __name__ == "__main__":
    main()
