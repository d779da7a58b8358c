"""MLflow's autologging through the plugin: params, metrics and tags land as MLflow
itself would write them; models and datasets are not logged, with one warning.

MLflow 3's autologging logs each trained model as a LoggedModel (an entity of its own,
whose id and artifact location the store chooses) and the training data as datasets;
the pipeline carries neither. Left to refuse them as any other call, autologging would
warn at every fit and, for scikit-learn, skip the training metrics, which it logs after
the model. So, inside an autologging session only (a user's own ``log_model`` or
``log_input`` is still refused with an ``MlflowException``):

- the datasets are dropped;
- the model is refused with the error scikit-learn's autologging steps over (as over a
  model it cannot pickle), so it goes on to log the training metrics;
- one warning per process says what is not logged and how to turn it off.
"""

from __future__ import annotations

import logging
import threading

from mlflow.exceptions import MlflowException
from mlflow.utils.autologging_utils import get_autologging_config

from ingest.tracking.compat import autologging_integration, model_refusal_sklearn_autolog_survives
from producers.mlflow.unsupported import unsupported_call

NOT_LOGGED = (
    "MLflow autologging through the matih:// tracking store logs params, metrics, tags and"
    " files, not models (MLflow 3 logged models) or datasets, which the pipeline does not carry:"
    " pass log_models=False, log_datasets=False to autolog() to turn them off and silence"
    " this warning"
)
"""The one warning an autologging process gets."""

_REPEATED = f"{NOT_LOGGED} (again)"
"""What scikit-learn's autologging would warn at each later fit; filtered out."""

_logger = logging.getLogger(__name__)


class _DropRepeats(logging.Filter):
    """Drops scikit-learn's autologging warning of a model refused again."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _REPEATED


class AutologGuard:
    """Tells autologging's model and dataset calls from a user's, and warns once."""

    def __init__(self) -> None:
        self._warned = False
        self._lock = threading.Lock()

    def refuse_model(self, call: str) -> MlflowException:
        """The error of a logged-model call: inside scikit-learn's autologging, one it
        steps over (warning the first time only); else the plain refusal."""
        integration = autologging_integration()
        if integration != "sklearn":
            return unsupported_call(call)
        logging.getLogger("mlflow.sklearn").addFilter(_DROP_REPEATS)  # once: filters are a set
        first = self._first()
        return model_refusal_sklearn_autolog_survives(NOT_LOGGED if first else _REPEATED)

    def drop_inputs(self, call: str) -> None:
        """Inside autologging, drops its datasets (warning the first time, unless the
        integration is silent); else refuses the call."""
        integration = autologging_integration()
        if integration is None:
            raise unsupported_call(call)
        silent = bool(get_autologging_config(integration, "silent", False))  # type: ignore[no-untyped-call]
        if self._first() and not silent:
            _logger.warning(NOT_LOGGED)

    def _first(self) -> bool:
        with self._lock:
            first, self._warned = not self._warned, True
        return first


_DROP_REPEATS = _DropRepeats()
