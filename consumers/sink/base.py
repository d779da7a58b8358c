"""The sink interface: events are added one by one, then written together by ``flush``."""

from __future__ import annotations

from abc import ABC, abstractmethod

from consumers.batch import RecordRef, Rejection
from ingest.events import Event


class BaseSink(ABC):
    """A store that run events are written to."""

    @abstractmethod
    def add(self, event: Event, source: RecordRef | None = None) -> None:
        """Holds ``event`` for the next flush."""

    @abstractmethod
    async def flush(self) -> list[Rejection]:
        """Writes every held event and forgets them, whether or not the write succeeded.

        Returns:
            What can never be written, and why; the rest is written.

        Raises:
            SinkUnavailableError: the store could not take the write now; nothing is
                lost, the caller redelivers the same events later.
        """
