"""The MLflow store calls the plugin does not take, each refused by name.

MLflow's ``AbstractStore`` has some 170 methods (traces, logged models, datasets,
gateways, scorers, ...); the plugin takes run logging and reads. Every other public
method is replaced here by one that raises an ``MlflowException`` naming the call,
so nothing fails silently or with a bare ``NotImplementedError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import FEATURE_DISABLED
from mlflow.store.tracking.abstract_store import AbstractStore

KEPT = frozenset(
    {
        # MLflow's own defaults, which end in the plugin's log_batch or get_metric_history.
        "log_metric",
        "log_param",
        "set_tag",
        "log_metric_async",
        "log_param_async",
        "set_tag_async",
        "log_batch_async",
        "end_async_logging",
        "flush_async_logging",
        "shut_down_async_logging",
        "search_runs",
        "get_metric_history_bulk_interval",
        "get_metric_history_bulk_interval_from_steps",
        "supports_workspaces",
        "supports_trace_archival",
    }
)
"""Inherited methods that keep MLflow's implementation."""

_Store = TypeVar("_Store", bound=type)


def unsupported_call(name: str) -> MlflowException:
    """The error of a call the plugin does not take."""
    return MlflowException(
        f"{name}() is not supported by the matih:// tracking store, which takes run logging"
        " (runs, metrics, params, tags, artifacts) and reads of runs and experiments; make"
        " this call against the store the workers write (MATIH_MLFLOW_TRACKING_URI)",
        FEATURE_DISABLED,
    )


def refuse_unsupported(store: _Store) -> _Store:
    """Class decorator: every public ``AbstractStore`` method that ``store`` does not define
    itself, and that is not ``KEPT``, raises ``unsupported_call``."""
    for name, member in inspect.getmembers(AbstractStore):
        if name.startswith("_") or name in KEPT or name in store.__dict__:
            continue
        if callable(member):
            setattr(store, name, _refusal(name))
    return store


def _refusal(name: str) -> Callable[..., NoReturn]:
    def refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise unsupported_call(name)

    refuse.__name__ = name
    return refuse
