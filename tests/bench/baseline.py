"""MLflow's own rate: processes calling ``MlflowClient.log_batch`` of 1000 metrics each,
into one fresh store of the kind the workers write.

    python -m tests.bench.baseline '<spec as JSON>'   (one such process)

The rate is every point over the wall time from the first process's spawn to the last
one's final call, so that both sides pay for starting a Python process with MLflow
in it, as the workers do; the rate over the logging calls alone is given beside it.
"""

from __future__ import annotations

import time
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from tests.bench.processes import child_result, child_spec, collect, spawn_child
from tests.bench.stores import Store
from tests.bench.trainers import KEYS

BATCH = 1000
BASE_TS = 1_700_000_000_000


def log_batch_rate(store: Store, processes: int, points: int, timeout: float) -> dict[str, Any]:
    """``processes`` processes log ``points`` in all with ``log_batch`` into ``store``.

    Raises:
        AssertionError: MLflow does not hold exactly the points logged.
    """
    client = MlflowClient(store.settings.tracking_uri)
    experiment = client.create_experiment(
        "baseline", artifact_location=store.settings.artifact_root
    )
    spec = {
        "tracking_uri": store.settings.tracking_uri,
        "experiment_id": experiment,
        "points": points // processes,
    }
    spawned = time.time()
    results = collect([spawn_child(__name__, spec) for _ in range(processes)], timeout)
    total = sum(r["points"] for r in results)
    for result in results:
        stored = sum(len(client.get_metric_history(result["run_id"], key)) for key in KEYS)
        assert stored == result["points"], f"log_batch stored {stored} of {result['points']}"
    ended = max(r["ended"] for r in results)
    return {
        "processes": processes,
        "points": total,
        "seconds": ended - spawned,
        "points_per_s": total / (ended - spawned),
        "points_per_s_logging_only": total / (ended - min(r["began"] for r in results)),
    }


def main() -> None:
    """One process: a run of its own, then its share of the points, 1000 a call."""
    spec = child_spec()
    client = MlflowClient(spec["tracking_uri"])
    run_id = client.create_run(spec["experiment_id"]).info.run_id
    points = spec["points"]
    metrics = [Metric(KEYS[i % 4], i * 0.001, BASE_TS + i, i // 4) for i in range(points)]
    began = time.time()
    for start in range(0, points, BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH], synchronous=True)
    child_result({"run_id": run_id, "points": points, "began": began, "ended": time.time()})


if __name__ == "__main__":
    main()
