"""``mlflow.log_artifact`` through the plugin: the same claim check as the SDK's.

MLflow's fluent artifact calls do not go through the tracking store: they write to the
artifact repository of the run's ``artifact_uri``. While this process writes a run, the
plugin gives the run the URI ``matih-artifacts:/<run id>``, served by this repository
(registered under MLflow's ``mlflow.artifact_repository`` entry point): a log call is
checked and queued on the SDK's background uploader, which stores the file in the
run's real location and publishes its claim check. Listing and downloading wait for
the run's uploads, then read the real location. Once the run has ended, reads show
the real location itself.

MLflow's callers may delete a file as soon as ``log_artifact`` returns: its own
``log_dict``, ``log_text``, ``log_figure`` and autologging's plots write to a temporary
folder they remove right after the call. So the repository first stages the file
(a hard link where it can, else a copy) in a folder of the run's own, which the
uploader reads and which goes when the run ends.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from producers.mlflow.errors import errors_as_mlflow
from producers.run import ActiveRun

SCHEME = "matih-artifacts"
_RUNS: dict[str, ActiveRun] = {}
"""The runs this process's plugin stores write, by run id (the repository gets a URI only)."""
_STAGED: dict[str, Path] = {}
"""Each run's staging folder, by run id, once it has one."""
_CALLS = itertools.count()


def claim_check_uri(run: ActiveRun) -> str:
    """The artifact URI the plugin gives a run while this process writes it."""
    _RUNS[run.run_id] = run
    return f"{SCHEME}:/{run.run_id}"


class ClaimCheckRepository(ArtifactRepository):
    """The artifact repository of ``matih-artifacts:/<run id>`` (MLflow builds it)."""

    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
    ) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        run_id = urlsplit(artifact_uri).path.strip("/")
        run = _RUNS.get(run_id)
        if run is None:
            raise MlflowException(
                f"{artifact_uri} names run {run_id!r}, which this process does not write;"
                " read its artifacts from the run's location in MLflow",
                RESOURCE_DOES_NOT_EXIST,
            )
        self._run = run

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        with errors_as_mlflow():
            self._run.log_artifact(_staged(self._run.run_id, local_file), artifact_path)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        with errors_as_mlflow():
            self._run.log_artifacts(_staged(self._run.run_id, local_dir), artifact_path)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        files: list[FileInfo] = self._stored().list_artifacts(path)
        return files

    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        local: str = self._stored().download_artifacts(artifact_path, dst_path)
        return local

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        self.download_artifacts(remote_file_path, os.path.dirname(local_path) or None)

    def _stored(self) -> Any:
        """The run's real location, once the uploads queued so far are done."""
        # Imported here: MLflow loads this module from inside that registry's own import.
        from mlflow.store.artifact.artifact_repository_registry import (  # noqa: PLC0415
            get_artifact_repository,
        )

        self._run.wait_for_artifacts()
        return get_artifact_repository(self._run.artifact_uri)


def discard_staged(run_id: str) -> None:
    """Removes the run's staging folder (once its uploads are done or given up)."""
    folder = _STAGED.pop(run_id, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _staged(run_id: str, local_path: str) -> str:
    """A path of the run's own with the same name and contents as ``local_path`` (a file,
    or a folder's files); ``local_path`` itself if it cannot be read, for the SDK to
    refuse with its reason."""
    source = Path(local_path)
    if not (source.is_file() or source.is_dir()):
        return local_path
    folder = _STAGED.get(run_id)
    if folder is None:
        folder = _STAGED[run_id] = Path(tempfile.mkdtemp(prefix=f"matih-artifacts-{run_id}-"))
    call = folder / str(next(_CALLS))
    try:
        if source.is_dir():
            shutil.copytree(source, call, copy_function=_link_or_copy)
            return str(call)
        call.mkdir()
        _link_or_copy(str(source), str(call / source.name))
    except OSError:
        return local_path
    return str(call / source.name)


def _link_or_copy(source: str, target: str) -> str:
    """A hard link (no bytes copied) where both are on one file system, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target
