"""Which MLflow errors refuse the data itself (the events go to the dead-letter topic)
and which say the store could not take it now (the write is retried)."""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)

_REFUSALS = frozenset(
    ErrorCode.Name(code)
    for code in (
        INVALID_PARAMETER_VALUE,
        INVALID_STATE,
        RESOURCE_DOES_NOT_EXIST,
        RESOURCE_ALREADY_EXISTS,
        BAD_REQUEST,
    )
)


def refused(exc: MlflowException) -> bool:
    """Whether MLflow refused what was written, as opposed to failing to write it."""
    return exc.error_code in _REFUSALS
