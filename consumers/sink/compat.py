"""The MLflow internals the sink relies on, in one place.

Each has no public equivalent. Checked against MLflow ``CHECKED_VERSIONS``;
``tests/unit/test_compat.py`` exercises each one, so an MLflow upgrade that
moves one fails there first.
"""

from __future__ import annotations

from typing import Any

from mlflow.tracking import MlflowClient

__all__ = ["CHECKED_VERSIONS", "tracking_store"]

CHECKED_VERSIONS = (">=3.17", "<4")
"""The MLflow releases these uses were read from and tested against."""


def tracking_store(client: MlflowClient) -> Any:
    """The store behind ``client``: its ``log_batch`` skips the client's per-metric
    re-wrapping (an active-model lookup for each metric), about 6% of a batch."""
    return client._tracking_client.store
