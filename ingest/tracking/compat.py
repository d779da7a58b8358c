"""The MLflow internals the project relies on, in one place: the sink's store, run
names as MLflow gives them, the plugin's artifact repositories, and how the plugin
tells autologging's calls from a user's.

Each has no public equivalent. Checked against MLflow ``CHECKED_VERSIONS``;
``tests/unit/test_compat.py`` exercises each one, so an MLflow upgrade that moves one
fails there first.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import FEATURE_DISABLED
from mlflow.utils.name_utils import _generate_random_name

if TYPE_CHECKING:
    from mlflow.store.artifact.artifact_repo import ArtifactRepository
    from mlflow.tracking import MlflowClient

__all__ = [
    "CHECKED_VERSIONS",
    "autologging_integration",
    "model_refusal_sklearn_autolog_survives",
    "prime_artifact_repository",
    "random_run_name",
    "tracking_store",
]

CHECKED_VERSIONS = (">=3.17", "<4")
"""The MLflow releases these uses were read from and tested against."""


def random_run_name() -> str:
    """A run name as MLflow gives a run created without one (``adjective-noun-123``)."""
    name: str = _generate_random_name()  # type: ignore[no-untyped-call]
    return name


def tracking_store(client: MlflowClient) -> Any:
    """The store behind ``client``: its ``log_batch`` skips the client's per-metric
    re-wrapping (an active-model lookup for each metric), about 6% of a batch."""
    return client._tracking_client.store


def prime_artifact_repository(run_id: str, repository: ArtifactRepository) -> None:
    """Tells MLflow's client which artifact repository a run uses: without it, its first
    artifact call reads the run to learn its location, and a read of a run this process
    writes waits for the workers (the trainer would wait on them)."""
    # Imported here: MLflow loads the plugin while ``mlflow.tracking`` is still importing.
    from mlflow.tracking._tracking_service import utils  # noqa: PLC0415

    utils._artifact_repos_cache[run_id] = repository


def autologging_integration() -> str | None:
    """The autologging integration (``"sklearn"``, ...) whose patched call is running now,
    in any thread (MLflow keeps one session per process), or None outside autologging."""
    from mlflow.utils.autologging_utils.safety import (  # noqa: PLC0415 - loads autologging
        _AutologgingSessionManager,
    )

    session = _AutologgingSessionManager.active_session()  # type: ignore[no-untyped-call]
    return None if session is None else str(session.integration)


def model_refusal_sklearn_autolog_survives(message: str) -> MlflowException:
    """An ``MlflowException`` (``FEATURE_DISABLED``) that scikit-learn's autologging takes as
    a model it could not save: it logs the message as a warning and goes on to log the
    training metrics to the run (any other error there skips them). Only where
    ``mlflow.sklearn`` is imported, as it is while its autologging runs."""
    return _sklearn_skippable()(message)


@cache
def _sklearn_skippable() -> type[MlflowException]:
    from mlflow.sklearn import _SklearnCustomModelPicklingError  # noqa: PLC0415 - needs sklearn

    class ModelNotLogged(_SklearnCustomModelPicklingError, MlflowException):
        def __init__(self, message: str) -> None:
            MlflowException.__init__(self, message, FEATURE_DISABLED)

    return ModelNotLogged
