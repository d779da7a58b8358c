"""Errors of the producing side."""

from __future__ import annotations

from ingest.errors import IngestError


class PublishError(IngestError):
    """Kafka did not acknowledge a record within the delivery timeout."""

    retriable = True


class RunStateError(IngestError):
    """A call that the run's state does not allow, such as logging to an ended run."""
