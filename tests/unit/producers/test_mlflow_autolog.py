"""Autologging's model and dataset calls through the plugin: inside a scikit-learn
autologging session the model is refused in the way that lets autologging go on to the
training metrics, datasets are dropped, and the process is warned once; outside one,
each is refused by name."""

from __future__ import annotations

import logging
import pickle

import pytest
from mlflow.exceptions import MlflowException
from mlflow.utils.autologging_utils.safety import _AutologgingSessionManager

from producers.mlflow.autolog import NOT_LOGGED, AutologGuard


def test_outside_autologging_both_calls_are_refused_by_name() -> None:
    guard = AutologGuard()
    assert str(guard.refuse_model("create_logged_model")).startswith(
        "create_logged_model() is not supported by the matih://"
    )
    with pytest.raises(MlflowException, match=r"^log_inputs\(\) is not supported"):
        guard.drop_inputs("log_inputs")


def test_inside_sklearn_autologging_the_process_is_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = AutologGuard()
    sklearn_logger = logging.getLogger("mlflow.sklearn")
    with _AutologgingSessionManager.start_session("sklearn"):  # type: ignore[no-untyped-call]
        guard.drop_inputs("log_inputs")
        guard.drop_inputs("log_inputs")
        refusals = [guard.refuse_model("create_logged_model") for _ in range(3)]
        for refusal in refusals:  # as scikit-learn's autologging reports them
            sklearn_logger.warning(str(refusal))
    assert all(isinstance(r, MlflowException) for r in refusals)
    assert all(isinstance(r, pickle.PicklingError) for r in refusals)  # what it steps over
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [NOT_LOGGED]
    assert "log_models=False, log_datasets=False" in NOT_LOGGED


def test_another_integrations_model_is_refused_by_name() -> None:
    with _AutologgingSessionManager.start_session("xgboost"):  # type: ignore[no-untyped-call]
        refusal = AutologGuard().refuse_model("create_logged_model")
    assert not isinstance(refusal, pickle.PicklingError)
    assert str(refusal).startswith("create_logged_model() is not supported")
