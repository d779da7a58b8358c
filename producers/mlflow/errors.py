"""The SDK's refusals as MLflow's callers expect them: an ``MlflowException``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from pydantic import ValidationError

from ingest.codec import describe
from ingest.errors import IngestError


@contextmanager
def errors_as_mlflow() -> Iterator[None]:
    """Turns a bad key, value, status or file, or a call on an ended run, into an
    ``MlflowException`` (``INVALID_PARAMETER_VALUE``) with the SDK's one-line reason."""
    try:
        yield
    except IngestError as exc:
        raise MlflowException(str(exc), INVALID_PARAMETER_VALUE) from None
    except ValidationError as exc:
        raise MlflowException(describe(exc), INVALID_PARAMETER_VALUE) from None
