"""An in-memory sink for unit tests: keeps what it was given, batch by batch."""

from __future__ import annotations

from consumers.batch import RecordRef, Rejection
from consumers.sink.base import BaseSink
from ingest.events import Event


class ListSink(BaseSink):
    """Keeps every flushed batch in ``batches``."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self._held: list[Event] = []

    def add(self, event: Event, source: RecordRef | None = None) -> None:
        self._held.append(event)

    async def flush(self) -> list[Rejection]:
        held, self._held = self._held, []
        if held:
            self.batches.append(held)
        return []

    @property
    def events(self) -> list[Event]:
        """Every flushed event, in order."""
        return [event for batch in self.batches for event in batch]
