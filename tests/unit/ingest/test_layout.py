"""The contract's reading of MLflow's run statuses, the one every face uses."""

from __future__ import annotations

import pytest
from mlflow.entities import RunStatus as MlflowRunStatus

from ingest.events import RunStatus
from ingest.layout import MLFLOW_STATUS, has_ended, run_status


@pytest.mark.parametrize("status", list(RunStatus))
def test_each_status_reads_back_as_itself(status: RunStatus) -> None:
    assert run_status(MLFLOW_STATUS[status]) is status


def test_every_status_mlflow_has_is_mapped() -> None:
    names = {MlflowRunStatus.to_string(status) for status in MlflowRunStatus.all_status()}
    assert names == set(MLFLOW_STATUS.values()) | {"SCHEDULED"}


def test_a_scheduled_run_is_running_and_has_not_ended() -> None:
    assert run_status("SCHEDULED") is RunStatus.RUNNING
    assert not has_ended("SCHEDULED")
    assert not has_ended("RUNNING")


@pytest.mark.parametrize("name", ["FINISHED", "FAILED", "KILLED"])
def test_a_terminal_mlflow_status_has_ended(name: str) -> None:
    assert has_ended(name)
