"""Every call of MLflow's tracking-store interface is either taken by the plugin or refused
with an MlflowException that names it: nothing fails silently or as NotImplementedError."""

from __future__ import annotations

import inspect

import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.abstract_store import AbstractStore

from producers.mlflow.store import MatihStore
from producers.mlflow.unsupported import KEPT

TAKEN = {
    "create_experiment", "get_experiment", "get_experiment_by_name", "search_experiments",
    "create_run", "log_batch", "update_run_info", "get_run", "get_metric_history",
}  # fmt: skip
REFUSED_OUTSIDE_AUTOLOGGING = {"create_logged_model", "log_inputs"}
"""The plugin's own, refused by name except inside autologging (producers.mlflow.autolog)."""
CALLS = sorted(
    name
    for name, member in inspect.getmembers(AbstractStore)
    if not name.startswith("_") and callable(member)
)


def test_the_calls_taken_are_the_plugins_own_and_no_others() -> None:
    own = {
        name
        for name in CALLS
        if name in MatihStore.__dict__ and "_refusal" not in MatihStore.__dict__[name].__qualname__
    }
    assert own == TAKEN | REFUSED_OUTSIDE_AUTOLOGGING


@pytest.mark.parametrize("name", [n for n in CALLS if n not in TAKEN and n not in KEPT])
def test_every_other_call_is_refused_by_name(name: str) -> None:
    store = MatihStore.__new__(MatihStore)  # the refusal needs no broker or store
    with pytest.raises(MlflowException, match=rf"^{name}\(\) is not supported by the matih://"):
        getattr(store, name)("any", "arguments")
