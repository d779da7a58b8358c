"""The in-memory buffer between a training loop and the background sender.

A logging call only appends to a deque (atomic under the GIL) and adds its estimated
size to a byte count: no wait, no I/O. The sender drains it and packs consecutive
metric calls of a run into ``MetricsColumns`` records of up to 1000 points, keeping
each run's order, and encodes them (``pack``).

The buffer may hold what the SDK's memory bound (``ProducerSettings.memory_bytes``)
leaves after the sender's encoded events (``held_elsewhere``, which the sender keeps
current). The sender takes all of it at once every ``linger_ms`` (sooner while it lags)
and moves it to Kafka or, when memory is full, to the on-disk spool; the calls it took
stay counted here until they are packed. Only when the sender does not get to run for
a long while (Python's GIL, which a loop that never sleeps hands over only every
switch interval, or the CPU) does the buffer reach the bound; then the oldest metric
calls are dropped, counted and warned about. Lifecycle events are never dropped.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

from ingest import codec
from ingest.events import EventEnvelope, MetricsColumns, ParamsLogged, RunCreated, TagsSet
from ingest.validation import MAX_METRICS_PER_BATCH
from producers.spool.segment import SpoolEntry
from producers.telemetry import warn_again

logger = logging.getLogger(__name__)

CALL_BYTES = 240
"""Memory a buffered metric call takes besides its points: the call's tuple, its step
and timestamp integers and the list (measured with tracemalloc; a test holds it)."""
POINT_BYTES = 100
"""Memory each point of a buffered call takes: its (key, value) tuple, the float and
the list slot (the key string is the caller's, shared by every call)."""
EVENT_BYTES = 1024
"""Memory a buffered lifecycle event takes, besides its names and values."""
_POINTS: Final = 5
"""Where a ``MetricCall`` holds its points."""


class RunIdentity(NamedTuple):
    """What every event of a run repeats."""

    tenant_id: str
    run_id: str
    experiment_name: str


MetricCall = tuple[str, str, str, int, int, tuple[tuple[str, float], ...]]
"""One ``log_metrics`` call: tenant, run, experiment, step, timestamp (ms), and its
(key, value) pairs.

Plain tuples of strings and numbers only, all the way down (not even a named tuple,
which is never untracked): the garbage collector stops
tracking such a tuple after its first young collection, so a full collection never
walks the calls held (with a million of them it took hundreds of milliseconds, during
which every thread, the training loop's too, stood still)."""
Item = MetricCall | EventEnvelope


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event on its way out, encoded: ``entry`` is what Kafka and the spool get.

    For metrics, ``event`` is the envelope only (tenant, run, kind, id: what the
    record's key and headers need); its points are in ``entry`` alone.
    """

    event: EventEnvelope
    entry: SpoolEntry


def item_bytes(item: Item) -> int:
    """The memory ``item`` is counted for while it waits in the buffer."""
    if isinstance(item, tuple):
        return CALL_BYTES + POINT_BYTES * len(item[_POINTS])
    values: dict[str, str] = {}
    if isinstance(item, ParamsLogged):
        values = item.params
    elif isinstance(item, TagsSet | RunCreated):
        values = item.tags
    return EVENT_BYTES + sum(100 + len(key) + len(value) for key, value in values.items())


class Calls(Protocol):
    """What logging calls append to: an ``EventBuffer`` read by a sender thread, or the
    ring read by a sender process (``producers.delivery.ring``)."""

    def add_metrics(
        self, run: RunIdentity, step: int, timestamp: int, points: Sequence[tuple[str, float]]
    ) -> None: ...

    def add_event(self, event: EventEnvelope) -> None: ...


class EventBuffer:
    """A FIFO of logging calls and lifecycle events, bounded in bytes.

    Args:
        max_bytes: the memory bound; past it (with ``held_elsewhere``) the oldest
            metric calls are dropped.
    """

    def __init__(self, max_bytes: int) -> None:
        self._items: deque[Item] = deque()
        self._lock = threading.Lock()
        self._max_bytes = max_bytes
        self._added = 0
        self._taken = 0
        self.dropped_points = 0
        self.held_elsewhere = 0
        """Bytes the sender holds (encoded, in flight): what the bound leaves is ours."""

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        """The estimated memory the buffered items take."""
        return self._added - self._taken

    def add_metrics(
        self, run: RunIdentity, step: int, timestamp: int, points: Sequence[tuple[str, float]]
    ) -> None:
        """Appends one metric call (already validated)."""
        call = (*run, step, timestamp, tuple(points))
        self._add(call, CALL_BYTES + POINT_BYTES * len(points))

    def add_event(self, event: EventEnvelope) -> None:
        """Appends a lifecycle event; it is never dropped."""
        self._add(event, item_bytes(event))

    def extend(self, items: Sequence[Item], size: int) -> None:
        """Appends items of ``size`` bytes (``item_bytes``) at once, as a sender process
        reads calls from its ring."""
        with self._lock:
            self._items.extend(items)
            self._added += size
            if self._added - self._taken + self.held_elsewhere > self._max_bytes:
                self._drop_oldest_metric_calls()

    def take(self) -> deque[Item]:
        """Takes every item, oldest first, in one swap under the lock (an append never
        waits for more than that). Their bytes stay counted until ``release``d: they
        are in memory until the sender has packed them."""
        with self._lock:
            items, self._items = self._items, deque()
        return items

    def release(self, size: int) -> None:
        """The sender has packed taken items of ``size`` bytes (``item_bytes``)."""
        with self._lock:
            self._taken += size

    def drain(self) -> list[Item]:
        """Takes and releases every item, oldest first."""
        items = list(self.take())
        self.release(sum(map(item_bytes, items)))
        return items

    def _add(self, item: Item, size: int) -> None:
        self.extend((item,), size)

    def _drop_oldest_metric_calls(self) -> None:
        # Under the lock: only when the sender has not run for a long while.
        dropped = 0
        index = 0
        limit = self._max_bytes - self.held_elsewhere
        while self._added - self._taken > limit and index < len(self._items):
            item = self._items[index]
            if not isinstance(item, tuple):
                index += 1
                continue
            del self._items[index]
            self._taken += item_bytes(item)
            dropped += len(item[_POINTS])
        if not dropped:
            return
        before, self.dropped_points = self.dropped_points, self.dropped_points + dropped
        if warn_again(before, self.dropped_points):
            logger.warning(
                "the SDK's memory (%d bytes) is full: its sender thread has not taken the"
                " logging calls in for a long while (it waits for Python's GIL, which a loop"
                " that never sleeps hands over seldom, or for the CPU): dropped the oldest"
                " metric points, %d so far",
                self._max_bytes,
                self.dropped_points,
            )


class _Columns:
    """One run's metric points on their way to a ``MetricsColumns`` record: each key
    once, then a column per field, appended straight from the buffered calls."""

    __slots__ = ("index", "key_index", "run", "steps", "timestamps", "values")

    def __init__(self, run: RunIdentity) -> None:
        self.run = run
        self.index: dict[str, int] = {}
        self.key_index: list[int] = []
        self.values: list[float] = []
        self.steps: list[int] = []
        self.timestamps: list[int] = []

    def add(self, step: int, timestamp: int, points: Sequence[tuple[str, float]]) -> None:
        index = self.index
        for key, value in points:
            position = index.get(key)
            if position is None:
                position = index[key] = len(index)
            self.key_index.append(position)
            self.values.append(value)
        self.steps.extend([step] * len(points))
        self.timestamps.extend([timestamp] * len(points))

    def outgoing(self) -> Outgoing:
        # The envelope without its points (built unvalidated: the calls were checked).
        head = MetricsColumns.model_construct(
            tenant_id=self.run.tenant_id,
            run_id=self.run.run_id,
            experiment_name=self.run.experiment_name,
            keys=(),
            key_index=(),
            values=(),
            steps=(),
            timestamps=(),
        )
        value = codec.encode_columns(
            head,
            keys=list(self.index),
            key_index=self.key_index,
            values=self.values,
            steps=self.steps,
            timestamps=self.timestamps,
        )
        return Outgoing(head, SpoolEntry(value, len(self.values)))


def pack(items: Iterable[Item]) -> list[Outgoing]:
    """Turns drained items into encoded events: each run's metric calls become
    ``MetricsColumns`` records of at most 1000 points, placed before that run's next
    lifecycle event."""
    pending: dict[tuple[str, str], _Columns] = {}
    packed: list[Outgoing] = []
    for item in items:
        if isinstance(item, tuple):
            tenant_id, run_id, experiment_name, step, timestamp, points = item
            columns = pending.get((tenant_id, run_id))
            if columns is None:
                run = RunIdentity(tenant_id, run_id, experiment_name)
                columns = pending[tenant_id, run_id] = _Columns(run)
            while len(columns.values) + len(points) > MAX_METRICS_PER_BATCH:
                room = MAX_METRICS_PER_BATCH - len(columns.values)
                columns.add(step, timestamp, points[:room])
                packed.append(columns.outgoing())
                columns = pending[tenant_id, run_id] = _Columns(columns.run)
                points = points[room:]
            if points:
                columns.add(step, timestamp, points)
            continue
        held = pending.pop((item.tenant_id, item.run_id), None)
        if held is not None:
            packed.append(held.outgoing())
        packed.append(Outgoing(item, SpoolEntry(codec.encode(item), 0)))
    packed.extend(columns.outgoing() for columns in pending.values())
    return packed
