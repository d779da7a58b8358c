"""Artifacts by claim check: the files go to the run's artifact location, never through Kafka.

``ActiveRun.log_artifact`` checks the file at the call and hands it to one background
thread per tracker, which streams it (never whole in memory) through MLflow's own
artifact repository for the run's location: a local folder by default, any URI MLflow
supports (``s3://``, ``gs://``, ...) in production. A failed upload is retried with
backoff. Once the file is stored, an ``artifact.logged`` event with its path, size and
SHA-256 is published like any other event, so the run records the claim check.
Ending a run first waits, bounded, for its uploads; what is not stored then is reported
in one line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import InvalidEventError
from ingest.events import ArtifactLogged, EventEnvelope
from ingest.validation import check_artifact_path
from producers.delivery.buffer import RunIdentity

logger = logging.getLogger(__name__)

RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Waits before the 1st, 2nd, ... retry of a failed upload; then the upload is reported."""


@dataclass(frozen=True, slots=True)
class ArtifactUpload:
    """One file to store: whose, from where, to which path under the run's location."""

    run: RunIdentity
    artifact_uri: str
    local_path: Path
    path: str


def artifact_files(
    run: RunIdentity, artifact_uri: str, local_path: str | os.PathLike[str], directory: str | None
) -> list[ArtifactUpload]:
    """The uploads of a file, or of every file under a folder, into ``directory`` (the run's
    root by default), as MLflow's ``log_artifact`` and ``log_artifacts`` name them.

    Raises:
        InvalidEventError: the file or folder is missing or unreadable, or a path would
            leave the run's artifact root.
    """
    source = Path(local_path)
    if not source.exists():
        raise InvalidEventError(f"artifact {str(source)!r} does not exist")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file())
        relative = [p.relative_to(source).as_posix() for p in files]
    else:
        files, relative = [source], [source.name]
    uploads = []
    for file, name in zip(files, relative, strict=True):
        try:
            with file.open("rb"):
                pass
            path = check_artifact_path(posixpath.join(directory, name) if directory else name)
        except OSError as exc:
            raise InvalidEventError(
                f"artifact {str(file)!r} cannot be read: {exc.strerror}"
            ) from None
        except ValueError as exc:
            raise InvalidEventError(str(exc)) from None
        uploads.append(ArtifactUpload(run, artifact_uri, file, path))
    return uploads


class ArtifactUploader:
    """The background thread that stores artifacts and then publishes their claim checks.

    Args:
        publish: hands an event to the SDK's delivery path (the buffer).
        backoff_s: waits before each retry of a failed upload.
    """

    def __init__(
        self,
        publish: Callable[[EventEnvelope], None],
        backoff_s: tuple[float, ...] = RETRY_BACKOFF_S,
    ) -> None:
        self._publish = publish
        self._backoff_s = backoff_s
        self._queue: list[ArtifactUpload] = []
        self._pending: dict[str, list[str]] = defaultdict(list)
        self._failed: dict[str, list[str]] = defaultdict(list)
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, uploads: list[ArtifactUpload]) -> None:
        """Queues the uploads; returns at once."""
        with self._changed:
            for upload in uploads:
                self._queue.append(upload)
                self._pending[upload.run.run_id].append(upload.path)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="matih-artifact-uploader", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def wait(self, run_id: str | None, timeout: float) -> list[str]:
        """Waits, at most ``timeout`` seconds, for the uploads of a run (of every run if
        None); returns what is not stored: ``"<path> (<why>)"`` each, none when all are."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending_of(run_id) and self._changed.wait(deadline - time.monotonic()):
                pass
            missing = [
                f"{path} (still uploading after {timeout:.0f}s)"
                for path in self._pending_of(run_id)
            ]
            runs = list(self._failed) if run_id is None else [run_id]
            for run in runs:
                missing += self._failed.pop(run, [])
        return missing

    def _pending_of(self, run_id: str | None) -> list[str]:
        if run_id is None:
            return [path for paths in self._pending.values() for path in paths]
        return self._pending.get(run_id, [])

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue:
                    self._changed.wait()
                upload = self._queue.pop(0)
            problem = self._store(upload)
            with self._changed:
                self._pending[upload.run.run_id].remove(upload.path)
                if problem is not None:
                    self._failed[upload.run.run_id].append(f"{upload.path} ({problem})")
                self._changed.notify_all()

    def _store(self, upload: ArtifactUpload) -> str | None:
        """Uploads one file, retrying; publishes its claim check. Returns why it failed."""
        attempt = 0
        while True:
            try:
                size, sha256 = _digest(upload.local_path)
                _upload(upload)
            except Exception as exc:  # any repository's failure: retried, then reported
                reason = f"{type(exc).__name__}: {exc}"
                if attempt == len(self._backoff_s):
                    logger.error(
                        "artifact %s of run %s not stored in %s after %d tries: %s",
                        upload.path,
                        upload.run.run_id,
                        upload.artifact_uri,
                        attempt + 1,
                        reason,
                    )
                    return reason
                time.sleep(self._backoff_s[attempt])
                attempt += 1
                continue
            run = upload.run
            self._publish(
                ArtifactLogged(
                    tenant_id=run.tenant_id,
                    run_id=run.run_id,
                    experiment_name=run.experiment_name,
                    path=upload.path,
                    size=size,
                    sha256=sha256,
                )
            )
            return None


def _digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in chunks (a 1 GB file is never held whole)."""
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256")
        return file.tell(), digest.hexdigest()


def _upload(upload: ArtifactUpload) -> None:
    # MLflow is loaded by the first upload only: a trainer that logs no artifact never pays
    # for it, and ``import producers`` stays light.
    from mlflow.store.artifact.artifact_repository_registry import (  # noqa: PLC0415
        get_artifact_repository,
    )

    directory = posixpath.dirname(upload.path) or None
    repository = get_artifact_repository(upload.artifact_uri)
    # The repository streams the file: a copy for a local folder, a multipart upload for
    # object stores.
    repository.log_artifact(str(upload.local_path), directory)  # type: ignore[no-untyped-call]
