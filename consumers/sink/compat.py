"""The MLflow internals the sink relies on, in one place, checked against MLflow 3.17.

Each has no public equivalent; a test pins their behaviour, so an MLflow upgrade
that moves one fails there first.
"""

from __future__ import annotations

from typing import Any

from mlflow.tracking import MlflowClient
from mlflow.utils.name_utils import _generate_random_name


def tracking_store(client: MlflowClient) -> Any:
    """The store behind ``client``: its ``log_batch`` skips the client's per-metric
    re-wrapping (an active-model lookup for each metric), about 6% of a batch."""
    return client._tracking_client.store


def random_run_name() -> str:
    """A run name as MLflow gives a run created without one (``adjective-noun-123``)."""
    name: str = _generate_random_name()  # type: ignore[no-untyped-call]
    return name
