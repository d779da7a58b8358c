"""Artifacts by claim check: checked at the call, stored in the background through MLflow's
own (local-folder) artifact repository, then recorded by an ``artifact.logged`` event."""

from __future__ import annotations

import hashlib
import logging
import os
import resource
import time
from pathlib import Path

import pytest

from ingest.errors import InvalidEventError
from ingest.events import ArtifactLogged, RunEnded
from ingest.ids import new_run_id
from ingest.settings import MlflowSettings
from producers import ActiveRun, ExperimentTracker, RunConfig
from producers.delivery.buffer import EventBuffer, RunIdentity
from tests.unit.producers.test_offline import offline_settings
from tests.unit.producers.test_run import FakeTracker

UNREADABLE = Path("/proc/sys/vm/compact_memory")
"""Write-only, even for root (procfs checks its own mode bits)."""


def make_run(buffer: EventBuffer, artifact_uri: str) -> tuple[ActiveRun, FakeTracker]:
    tracker = FakeTracker(buffer)
    run = ActiveRun(
        tracker,  # type: ignore[arg-type]
        RunIdentity("acme-corp", new_run_id(), "exp"),
        buffer,
        start_time=1,
        artifact_uri=artifact_uri,
    )
    return run, tracker


def claim_checks(buffer: EventBuffer) -> dict[str, tuple[int, str]]:
    return {
        event.path: (event.size, event.sha256)
        for event in buffer.drain()
        if isinstance(event, ArtifactLogged)
    }


@pytest.fixture
def buffer() -> EventBuffer:
    return EventBuffer(max_bytes=64 * 1024 * 1024)


def test_a_file_is_stored_then_its_path_size_and_hash_published(
    buffer: EventBuffer, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    run, tracker = make_run(buffer, str(root))
    (tmp_path / "model.pkl").write_bytes(b"weights" * 1000)
    (tmp_path / "data" / "split").mkdir(parents=True)
    (tmp_path / "data" / "train.csv").write_text("a,b\n1,2\n")
    (tmp_path / "data" / "split" / "fold-1.csv").write_text("x\n")

    run.log_artifact(tmp_path / "model.pkl", artifact_path="models")
    run.log_artifacts(str(tmp_path / "data"))
    assert tracker.artifacts.wait(run.run_id, 10) == []

    assert (root / "models" / "model.pkl").read_bytes() == b"weights" * 1000
    assert (root / "split" / "fold-1.csv").read_text() == "x\n"
    assert claim_checks(buffer) == {
        "models/model.pkl": (7000, hashlib.sha256(b"weights" * 1000).hexdigest()),
        "split/fold-1.csv": (2, hashlib.sha256(b"x\n").hexdigest()),
        "train.csv": (8, hashlib.sha256(b"a,b\n1,2\n").hexdigest()),
    }


def test_a_missing_or_unreadable_file_and_an_escaping_path_raise_at_the_call(
    buffer: EventBuffer, tmp_path: Path
) -> None:
    run, tracker = make_run(buffer, str(tmp_path / "store"))
    (tmp_path / "ok.txt").write_text("ok")
    with pytest.raises(InvalidEventError, match=r"artifact '.*/missing.bin' does not exist"):
        run.log_artifact(tmp_path / "missing.bin")
    with pytest.raises(InvalidEventError, match=r"artifact path '\.\./ok.txt' escapes the run's"):
        run.log_artifact(tmp_path / "ok.txt", artifact_path="..")
    with pytest.raises(InvalidEventError, match=r"artifact path '/etc/ok.txt' escapes the run's"):
        run.log_artifact(tmp_path / "ok.txt", artifact_path="/etc")
    if UNREADABLE.exists():
        with pytest.raises(InvalidEventError, match=r"cannot be read: Permission denied"):
            run.log_artifact(UNREADABLE)
    assert tracker.artifacts.wait(run.run_id, 1) == []
    assert claim_checks(buffer) == {}
    assert not (tmp_path / "store").exists()


def test_a_failed_upload_is_retried_then_reported_in_one_line_when_the_run_ends(
    buffer: EventBuffer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run, _ = make_run(buffer, str(blocker / "artifacts"))  # no folder can be made under it
    (tmp_path / "model.pkl").write_bytes(b"w")
    run.log_artifact(tmp_path / "model.pkl")
    with caplog.at_level(logging.ERROR):
        run.end()
    reports = [r.getMessage() for r in caplog.records if "ends without" in r.getMessage()]
    assert len(reports) == 1
    assert reports[0].startswith(f"run {run.run_id} ends without 1 of its artifacts: model.pkl (")
    assert "after 3 tries" in caplog.text  # the first try and two retries
    events = buffer.drain()
    assert not any(isinstance(event, ArtifactLogged) for event in events)
    assert isinstance(events[-1], RunEnded)


@pytest.mark.slow
def test_a_1gb_file_streams_through_in_bounded_memory_and_time(
    buffer: EventBuffer, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as file:
        file.truncate(1 << 30)  # sparse: 1 GiB of zeros that take no disk to create
    run, tracker = make_run(buffer, str(tmp_path / "store"))
    (tmp_path / "warm-up.txt").write_text("loads MLflow's repositories, once per process")
    run.log_artifact(tmp_path / "warm-up.txt")
    assert tracker.artifacts.wait(run.run_id, 60) == []
    buffer.drain()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, high-water mark
    started = time.monotonic()
    run.log_artifact(big)
    assert time.monotonic() - started < 0.1  # the call only queues
    assert tracker.artifacts.wait(run.run_id, 120) == []
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 64, f"peak memory grew by {grown_mb:.0f} MB"
    stored = tmp_path / "store" / "big.bin"
    assert os.path.getsize(stored) == 1 << 30
    zeros = hashlib.sha256()
    chunk = bytes(1 << 20)
    for _ in range(1024):
        zeros.update(chunk)
    assert claim_checks(buffer) == {"big.bin": (1 << 30, zeros.hexdigest())}


def test_closing_with_an_upload_still_failing_names_it_in_one_line_within_the_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = offline_settings(tmp_path).model_copy(
        update={"mlflow": MlflowSettings(artifact_root=str(blocker))}
    )
    tracker = ExperimentTracker(settings)
    run = tracker.start_run("exp", RunConfig(tenant_id="acme-corp"))
    (tmp_path / "model.pkl").write_bytes(b"w")
    run.log_artifact(tmp_path / "model.pkl")  # retried with backoff for about 15 s
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="producers"):
        tracker.close(1.0)
    assert time.monotonic() - started <= 1.0 + 0.6
    lines = [r.getMessage() for r in caplog.records if "artifacts not stored" in r.getMessage()]
    assert lines == [
        "closing with 1 artifacts not stored (their runs do not record them):"
        " model.pkl (still uploading after 1s)"
    ]
