"""mlflow.log_artifact through the plugin: MLflow's callers may delete the file as soon as
the call returns (its own log_dict, log_figure and autologging do), so the repository
hands the uploader a staged path of the run's own, with the same name and bytes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

import mlflow.tracking  # noqa: F401 - MLflow loads its registries, then the plugin's modules

from producers.mlflow.artifacts import ClaimCheckRepository, claim_check_uri, discard_staged
from producers.run import ActiveRun


class RecordingRun:
    """Stands in for the SDK's run: records what the uploader would read, at the call."""

    run_id = "0" * 31 + "a"

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        self.paths.append(Path(local_path))

    log_artifacts = log_artifact


def test_a_file_deleted_after_the_call_is_still_stored(tmp_path: Path) -> None:
    run = RecordingRun()
    repository = ClaimCheckRepository(claim_check_uri(cast("ActiveRun", run)))
    temporary = tmp_path / "written-by-mlflow"
    (temporary / "plots").mkdir(parents=True)
    (temporary / "metric_info.json").write_text('{"a": 1}')
    (temporary / "plots" / "roc.png").write_bytes(b"png")
    repository.log_artifact(str(temporary / "metric_info.json"))
    repository.log_artifact(str(temporary / "metric_info.json"), "again")
    repository.log_artifacts(str(temporary / "plots"), "plots")
    shutil.rmtree(temporary)

    single, again, folder = run.paths
    assert single.name == again.name == "metric_info.json"
    assert single != again
    assert single.read_text() == again.read_text() == '{"a": 1}'
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["roc.png"]
    assert (folder / "roc.png").read_bytes() == b"png"

    discard_staged(run.run_id)
    assert not single.exists()
    assert not folder.exists()


def test_a_missing_file_goes_to_the_sdk_as_given_for_its_refusal(tmp_path: Path) -> None:
    run = RecordingRun()
    repository = ClaimCheckRepository(claim_check_uri(cast("ActiveRun", run)))
    repository.log_artifact(str(tmp_path / "nothing.txt"))
    assert run.paths == [tmp_path / "nothing.txt"]
