"""Errors of the consuming side."""

from __future__ import annotations

from ingest.errors import IngestError


class SinkUnavailableError(IngestError):
    """The store did not take a write for a reason that may pass (down, slow, locked).

    The worker keeps the batch uncommitted and tries again after a backoff.
    """

    retriable = True


class DeadLetterError(IngestError):
    """A dead letter was not acknowledged; the source record stays uncommitted."""

    retriable = True
