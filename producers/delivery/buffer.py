"""The in-memory buffer between a training loop and the background sender.

A logging call only appends to a deque (atomic under the GIL, no lock, no I/O).
The sender drains it and packs consecutive metric calls of a run into
``MetricsLogged`` events of up to 1000 points, keeping each run's order. The
buffer is bounded: when full, a call waits a bounded time for room, then the
oldest metric points are dropped, counted and warned about. Lifecycle events
are never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from ingest.events import EventEnvelope, MetricPoint, MetricsLogged
from ingest.validation import MAX_METRICS_PER_BATCH

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """What every event of a run repeats."""

    tenant_id: str
    run_id: str
    experiment_name: str


MetricCall = tuple[RunIdentity, int, int, list[tuple[str, float]]]
"""One ``log_metrics`` call: run, step, timestamp (ms), (key, value) pairs."""
Item = MetricCall | EventEnvelope


class EventBuffer:
    """A bounded FIFO of logging calls and lifecycle events.

    Args:
        max_items: calls and events held before the full policy applies.
        full_wait_s: how long a call waits for room before old points are dropped.
    """

    def __init__(self, max_items: int, full_wait_s: float) -> None:
        self._items: deque[Item] = deque()
        self._lock = threading.Lock()
        self._max_items = max_items
        self._full_wait_s = full_wait_s
        self.dropped_points = 0

    def __len__(self) -> int:
        return len(self._items)

    def add_metrics(
        self, run: RunIdentity, step: int, timestamp: int, points: list[tuple[str, float]]
    ) -> None:
        """Appends one metric call (already validated)."""
        if len(self._items) >= self._max_items:
            self._make_room()
        self._items.append((run, step, timestamp, points))

    def add_event(self, event: EventEnvelope) -> None:
        """Appends a lifecycle event; it may wait for room but is never dropped."""
        if len(self._items) >= self._max_items:
            self._make_room()
        self._items.append(event)

    def drain(self) -> list[Item]:
        """Takes every item, oldest first."""
        with self._lock:
            items = list(self._items)
            for _ in range(len(items)):
                self._items.popleft()
        return items

    def _make_room(self) -> None:
        deadline = time.monotonic() + self._full_wait_s
        while len(self._items) >= self._max_items and time.monotonic() < deadline:
            time.sleep(0.001)
        if len(self._items) < self._max_items:
            return
        with self._lock:
            dropped = self._drop_oldest_metric_call()
        before, self.dropped_points = self.dropped_points, self.dropped_points + dropped
        if dropped and (before == 0 or before // 10_000 != self.dropped_points // 10_000):
            logger.warning(
                "the event buffer is full (%d calls) and Kafka is not keeping up: dropped"
                " the oldest metric points, %d so far",
                self._max_items,
                self.dropped_points,
            )

    def _drop_oldest_metric_call(self) -> int:
        # Appends only touch the right end, so indexes from the left stay valid.
        for index in range(len(self._items)):
            item = self._items[index]
            if isinstance(item, tuple):
                del self._items[index]
                return len(item[3])
        return 0


def pack(items: Iterable[Item]) -> list[EventEnvelope]:
    """Turns drained items into events: each run's metric calls become ``MetricsLogged``
    events of at most 1000 points, placed before that run's next lifecycle event."""
    pending: dict[tuple[str, str], tuple[RunIdentity, list[MetricPoint]]] = {}
    events: list[EventEnvelope] = []
    for item in items:
        if isinstance(item, tuple):
            run, step, timestamp, points = item
            _, bucket = pending.setdefault((run.tenant_id, run.run_id), (run, []))
            bucket.extend(
                MetricPoint.model_construct(key=key, value=value, step=step, timestamp=timestamp)
                for key, value in points
            )
            continue
        held = pending.pop((item.tenant_id, item.run_id), None)
        if held is not None:
            events.extend(_metrics_events(*held))
        events.append(item)
    for held in pending.values():
        events.extend(_metrics_events(*held))
    return events


def _metrics_events(run: RunIdentity, points: list[MetricPoint]) -> list[EventEnvelope]:
    return [
        MetricsLogged(
            tenant_id=run.tenant_id,
            run_id=run.run_id,
            experiment_name=run.experiment_name,
            metrics=tuple(points[start : start + MAX_METRICS_PER_BATCH]),
        )
        for start in range(0, len(points), MAX_METRICS_PER_BATCH)
    ]
