"""The MLflow internals the plugin relies on, in one place.

Each has no public equivalent. Checked against MLflow ``CHECKED_VERSIONS``;
``tests/unit/test_compat.py`` exercises each one, so an MLflow upgrade that moves one
fails there first.
"""

from __future__ import annotations

from mlflow.store.artifact.artifact_repo import ArtifactRepository

__all__ = ["CHECKED_VERSIONS", "prime_artifact_repository"]

CHECKED_VERSIONS = (">=3.17", "<4")
"""The MLflow releases these uses were read from and tested against."""


def prime_artifact_repository(run_id: str, repository: ArtifactRepository) -> None:
    """Tells MLflow's client which artifact repository a run uses: without it, its first
    artifact call reads the run to learn its location, and a read of a run this process
    writes waits for the workers (the trainer would wait on them)."""
    # Imported here: MLflow loads the plugin while ``mlflow.tracking`` is still importing.
    from mlflow.tracking._tracking_service import utils  # noqa: PLC0415

    utils._artifact_repos_cache[run_id] = repository
