"""The MLflow internals both writers of runs rely on (the workers and the MLflow plugin).

Each has no public equivalent. Checked against MLflow ``CHECKED_VERSIONS``;
``tests/unit/test_compat.py`` exercises each one, so an MLflow upgrade that moves one
fails there first.
"""

from __future__ import annotations

from mlflow.utils.name_utils import _generate_random_name

__all__ = ["CHECKED_VERSIONS", "random_run_name"]

CHECKED_VERSIONS = (">=3.17", "<4")
"""The MLflow releases these uses were read from and tested against."""


def random_run_name() -> str:
    """A run name as MLflow gives a run created without one (``adjective-noun-123``)."""
    name: str = _generate_random_name()  # type: ignore[no-untyped-call]
    return name
