"""The encoded events the sender holds in memory before Kafka (or the spool) takes them.

The SDK's memory bound (``ProducerSettings.memory_bytes``) covers the logging calls
in the buffer (``producers.delivery.buffer``), this backlog and the records in flight
to Kafka. Records in flight may take a quarter of it, the backlog a quarter, and the
buffer whatever the other two leave. Memory is full when the backlog outgrows its
quarter (Kafka takes less than the trainer logs) or the buffer holds an eighth of the
bound (the sender lags the trainer: spilling costs it less than sending, no
compression, no network). Then the sender spills to the on-disk spool, oldest first,
and newer events follow there until the spool is delivered. The mark is low so that
the buffer keeps room to absorb the sender's pauses (a full garbage collection, a
slow disk, a GIL that a loop that never sleeps hands over seldom) before it drops.
Only if the disk refuses the spill are the oldest metric records shed here, counted
and warned about; lifecycle events never are.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence

from producers.delivery.buffer import Outgoing
from producers.telemetry import warn_again

logger = logging.getLogger(__name__)


def shares(memory_bytes: int) -> tuple[int, int, int]:
    """Of the memory bound: the buffer's mark past which the sender spills, and the
    shares of the records in flight and of the backlog."""
    return memory_bytes // 8, memory_bytes // 4, memory_bytes // 4


class Backlog:
    """A FIFO of encoded events, counted in bytes.

    Args:
        max_bytes: its share of the memory bound; past it, it is ``full``.
    """

    def __init__(self, max_bytes: int) -> None:
        self._items: deque[Outgoing] = deque()
        self.max_bytes = max_bytes
        self.size_bytes = 0
        self.dropped_points = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Outgoing]:
        return iter(self._items)

    @property
    def full(self) -> bool:
        """Past its share: time to spill."""
        return self.size_bytes > self.max_bytes

    def first(self) -> Outgoing:
        """The oldest event (the backlog must not be empty)."""
        return self._items[0]

    def append(self, item: Outgoing) -> None:
        """Adds the newest event."""
        self._items.append(item)
        self.size_bytes += item.entry.size

    def put_back(self, items: Sequence[Outgoing]) -> None:
        """Puts ``items`` (oldest first) back in front of everything held."""
        self._items.extendleft(reversed(items))
        self.size_bytes += sum(item.entry.size for item in items)

    def popleft(self) -> Outgoing:
        """Takes the oldest event."""
        item = self._items.popleft()
        self.size_bytes -= item.entry.size
        return item

    def take_all(self) -> list[Outgoing]:
        """Takes every event, oldest first."""
        items = list(self._items)
        self._items.clear()
        self.size_bytes = 0
        return items

    def shed(self) -> None:
        """Drops the oldest metric records until the backlog fits its share again (the
        disk refused the spill); lifecycle events stay, past the share if need be."""
        if not self.full:
            return
        kept: list[Outgoing] = []
        dropped = 0
        while self._items and self.full:
            item = self.popleft()
            if item.entry.points:
                dropped += item.entry.points
            else:
                kept.append(item)
        self.put_back(kept)
        if not dropped:
            return
        before, self.dropped_points = self.dropped_points, self.dropped_points + dropped
        if warn_again(before, self.dropped_points):
            logger.warning(
                "Kafka is not keeping up and the spool cannot be written: dropped the oldest"
                " metric points held in memory (%d bytes), %d so far; run creation and end,"
                " params and tags are kept",
                self.max_bytes,
                self.dropped_points,
            )
