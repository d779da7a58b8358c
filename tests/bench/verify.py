"""Exact counts: does MLflow, read through its own client, hold each logged point once?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient

from ingest.reader import RunReader
from tests.bench.trainers import KEYS


@dataclass(frozen=True, slots=True)
class Counts:
    """Points logged against the rows MLflow holds for them."""

    logged: int
    stored: int
    missing: int
    """Logged (key, step) pairs without a row."""
    duplicated: int
    """Rows beyond the first for one (key, step)."""

    @property
    def exact(self) -> bool:
        """Whether every point is stored exactly once."""
        return self.missing == 0 and self.duplicated == 0 and self.stored == self.logged

    def as_dict(self) -> dict[str, Any]:
        """The counts, and whether they are exact."""
        return {
            "logged": self.logged,
            "stored": self.stored,
            "missing": self.missing,
            "duplicated": self.duplicated,
            "exact": self.exact,
        }


def count_points(tracking_uri: str, trainers: list[dict[str, Any]]) -> Counts:
    """Compares each trainer's run in MLflow with what the trainer logged (``calls``
    steps of every key in ``KEYS``)."""
    reader = RunReader(tracking_uri)
    client = MlflowClient(tracking_uri)
    logged = stored = missing = duplicated = 0
    for trainer in trainers:
        calls = trainer["calls"]
        logged += calls * len(KEYS)
        run = reader.find_run(trainer["tenant"], trainer["run_id"])
        if run is None:
            missing += calls * len(KEYS)
            continue
        for key in KEYS:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            distinct = set(steps)
            stored += len(steps)
            duplicated += len(steps) - len(distinct)
            missing += sum(1 for step in range(calls) if step not in distinct)
    return Counts(logged, stored, missing, duplicated)


def require_exact(counts: Counts, what: str) -> None:
    """Raises if ``counts`` is not exact, saying what was measured.

    Raises:
        AssertionError: a point is missing or stored twice.
    """
    if not counts.exact:
        raise AssertionError(f"{what}: MLflow does not hold exactly the logged points: {counts}")
