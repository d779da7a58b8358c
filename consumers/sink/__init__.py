"""Where consumed events are written."""

from consumers.sink.base import BaseSink
from consumers.sink.memory import ListSink
from consumers.sink.mlflow import MlflowSink

__all__ = ["BaseSink", "ListSink", "MlflowSink"]
