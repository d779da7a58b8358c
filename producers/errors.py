"""Errors of the producing side."""

from __future__ import annotations

from ingest.errors import IngestError


class PublishError(IngestError):
    """Kafka did not acknowledge a record within the delivery timeout."""

    retriable = True


class RunStateError(IngestError):
    """A call that the run's state does not allow, such as logging to an ended run."""


class SpoolBusyError(IngestError):
    """A spool is held by a live process, which drains it itself.

    Retriable: once that process exits, ``matih-ingest spool flush`` can take it.
    """

    retriable = True


class SpoolError(IngestError):
    """The spool directory could not be written or read (disk full, permissions)."""

    retriable = True
