"""The shared-memory ring between a training process and its sender process.

A logging call packs itself into the ring (``RingWriter``): bytes in memory that the
sender process maps too. No system call, no lock the other process holds, and nothing
left behind that Python's garbage collector tracks, so a call costs the same whatever
Kafka or the disk do; it waits only on a full ring, when the sender process reads
slower than the trainer logs (it is short of CPU), which paces the trainer instead
of losing what it logged. The sender process (``producers.delivery.sidecar``)
reads the ring (``RingReader``) into its ``EventBuffer``; from there on, delivery is
the thread design's (``producers.delivery.sender``).

Layout: a 64-byte header, then ``capacity`` bytes of records, written round and round.
The header holds how far the reader has consumed (bytes and records), each twice, the
second copy inverted: the writer believes them only when both copies agree, so a read
that overlaps the reader's store is never trusted. Each record is ``<seq, size, crc>``
(three little-endian u32) and ``size`` bytes of body, padded to 4 bytes. The CRC covers
the body and is seeded with the sequence number: the reader takes a record only once
every byte of it is visible (whatever order another CPU makes stores visible in) and
never mistakes one left from an earlier lap. A record that would cross the end is
preceded by a pad record (or, where not even a header fits, by nothing): the reader
skips to the start, as the writer did.

Bodies start with their kind: a run (its index, tenant, run id, experiment), a metric
key (its index and name), a metric call (run and key indexes, step, timestamp and
values) or a lifecycle event (its JSON). Runs and keys go once each; calls name them
by index.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import weakref
import zlib
from collections import deque
from collections.abc import Sequence
from typing import Final

from ingest import codec
from ingest.events import EventEnvelope
from producers.delivery.buffer import (
    CALL_BYTES,
    POINT_BYTES,
    EventBuffer,
    MetricCall,
    RunIdentity,
)
from producers.telemetry import warn_again

logger = logging.getLogger(__name__)

HEADER_BYTES: Final = 64
MIN_CAPACITY: Final = 2 * 1024 * 1024
"""Room for the largest lifecycle event Kafka's default request size lets through."""
MAX_CAPACITY: Final = 32 * 1024 * 1024
FULL_WAIT_S: Final = 1.0
"""How long a call waits for room in a full ring before its points are dropped."""
_FULL_POLL_S: Final = 0.0001
_PUBLISH_EVERY: Final = 1024
"""Records the reader consumes between two updates of the header (the writer's room)."""
_MASK: Final = (1 << 64) - 1
_CONSUMED = struct.Struct("<QQQQ")
_RECORD = struct.Struct("<III")
_MIN_RECORD: Final = _RECORD.size + 4
"""The least room a record (a pad: header and kind) takes; less at the end is skipped."""
_PAD, _RUN, _KEY, _CALL, _EVENT = range(5)
_INDEXED = struct.Struct("<BI")
_CALL_HEAD = struct.Struct("<BIqqH")
_CALL_HEAD_FIELDS: Final = 5
_NAMES_KEPT: Final = 10_000
"""Distinct key sets a reader remembers (a loop logs the same few, step after step)."""


def ring_capacity(memory_bytes: int) -> int:
    """The ring's share of the SDK's memory bound: a quarter, within 2 and 32 MiB."""
    return min(max(memory_bytes // 4, MIN_CAPACITY), MAX_CAPACITY)


class RingWriter:
    """The training process's end: appends calls and events.

    When the ring is full (the sender process reads slower than this process logs),
    a call waits for room, up to ``full_wait_s``; then, or at once if the sender
    process is gone, a metric call is dropped, counted and warned about, and a
    lifecycle event waits in this process's memory, in order, and goes in first once
    there is room.

    Args:
        memory: the ring (header included), shared with the reader.
        full_wait_s: how long a call waits for room in a full ring before its points
            are dropped.
    """

    def __init__(self, memory: memoryview, full_wait_s: float = FULL_WAIT_S) -> None:
        self._memory = memory
        self._full_wait_s = full_wait_s
        self._capacity = len(memory) - HEADER_BYTES
        self._lock = threading.Lock()
        self._written = 0
        """Bytes written so far (the next record's position, before the modulo)."""
        self._records = 0
        self._consumed = (0, 0)
        """The reader's last trusted (bytes, records)."""
        self._runs: dict[RunIdentity, int] = {}
        self._keys: dict[str, int] = {}
        self._layouts: dict[int, struct.Struct] = {}
        self._waiting: deque[bytes] = deque()
        self.dropped_points = 0
        self.rejected_events = 0
        self.waits = 0
        """Calls that found the ring full and waited for room."""
        self.waited_s = 0.0
        self.closed: str | None = None
        """Why calls are no longer taken (the sender process ended, or this is a fork)."""
        _WRITERS.add(self)

    @property
    def pending_records(self) -> int:
        """Records written that the reader has not consumed (as far as seen), and events
        waiting for room."""
        self._refresh()
        return self._records - self._consumed[1] + len(self._waiting)

    @property
    def size_bytes(self) -> int:
        """Bytes of the ring the reader has not consumed yet (as far as seen)."""
        return self._written - self._consumed[0]

    def add_metrics(
        self, run: RunIdentity, step: int, timestamp: int, points: Sequence[tuple[str, float]]
    ) -> None:
        """Appends one metric call (already validated); on a full ring, see the class."""
        with self._lock:
            if self.closed or (self._waiting and not self._catch_up()):
                self._drop(len(points))
                return
            run_index = self._runs.get(run)
            if run_index is None and (run_index := self._add_run(run)) is None:
                self._drop(len(points))
                return
            keys = self._keys
            indexes = []
            values = []
            for key, value in points:
                index = keys.get(key)
                if index is None and (index := self._add_key(key)) is None:
                    self._drop(len(points))
                    return
                indexes.append(index)
                values.append(value)
            count = len(values)
            layout = self._layouts.get(count) or self._layouts.setdefault(count, _layout(count))
            if not self._put(
                layout.pack(_CALL, run_index, step, timestamp, count, *indexes, *values)
            ):
                self._drop(count)

    def _add_run(self, run: RunIdentity) -> int | None:
        index = len(self._runs)
        if not self._put(_INDEXED.pack(_RUN, index) + _strings(run)):
            return None
        self._runs[run] = index
        return index

    def _add_key(self, key: str) -> int | None:
        index = len(self._keys)
        if not self._put(_INDEXED.pack(_KEY, index) + key.encode()):
            return None
        self._keys[key] = index
        return index

    def add_event(self, event: EventEnvelope) -> None:
        """Appends a lifecycle event; it is never dropped while this process lives."""
        body = bytes((_EVENT,)) + codec.encode(event)
        if _RECORD.size + len(body) > self._capacity:
            self.rejected_events += 1
            logger.error(
                "a %s event of run %s takes %d bytes, more than the SDK's ring (%d bytes,"
                " a quarter of MATIH_PRODUCER_MEMORY_BYTES): it is not sent",
                event.kind,
                event.run_id,
                len(body),
                self._capacity,
            )
            return
        with self._lock:
            if self.closed:
                self.rejected_events += 1
                logger.error(
                    "a %s event of run %s is not sent: %s", event.kind, event.run_id, self.closed
                )
                return
            self._waiting.append(body)
            self._catch_up()

    def orphan(self, reason: str) -> None:
        """Takes no more calls (in a fork, whose lock a thread left behind may hold)."""
        self._lock = threading.Lock()
        self.closed = reason

    def flush_waiting(self) -> bool:
        """Moves events waiting for room into the ring; whether none is left."""
        with self._lock:
            return self._catch_up()

    def _catch_up(self) -> bool:
        waiting = self._waiting
        while waiting:
            if not self._put(waiting[0]):
                return False
            waiting.popleft()
        return True

    def _drop(self, points: int) -> None:
        before, self.dropped_points = self.dropped_points, self.dropped_points + points
        if warn_again(before, self.dropped_points):
            logger.warning(
                "the SDK's ring (%d bytes) takes no more calls: %s: dropped the newest"
                " metric points, %d so far",
                self._capacity,
                self.closed or "its sender process has not read it for a long while",
                self.dropped_points,
            )

    def _refresh(self) -> None:
        read, records, read_check, records_check = _CONSUMED.unpack_from(self._memory, 0)
        if read ^ read_check == _MASK and records ^ records_check == _MASK:
            self._consumed = (read, records)

    def _put(self, body: bytes) -> bool:
        """Writes one record if there is room (a pad first, if it would cross the end)."""
        size = len(body)
        length = _RECORD.size + size + (-size) % 4
        capacity = self._capacity
        offset = self._written % capacity
        to_end = capacity - offset
        if length > to_end:
            if not self._room(to_end):
                return False
            if to_end >= _MIN_RECORD:
                self._record(offset, bytes((_PAD,)))
            self._written += to_end
            offset = 0
        if not self._room(length):
            return False
        self._record(offset, body)
        self._written += length
        return True

    def _room(self, length: int) -> bool:
        """Whether ``length`` bytes are free, asking the reader's header only when the
        last answer it gave does not say so; waits for them while the ring is full."""
        if length <= self._capacity - self.size_bytes:
            return True
        self._refresh()
        return length <= self._capacity - self.size_bytes or self._wait_for_room(length)

    def _wait_for_room(self, length: int) -> bool:
        """The sender process reads slower than this process logs (it is starved of
        CPU): waiting for it paces the loop, where dropping would lose what was logged.
        Gives up after ``full_wait_s`` without room, or at once if the reader is gone."""
        started = time.monotonic()
        room = False
        while not self.closed and time.monotonic() - started < self._full_wait_s:
            time.sleep(_FULL_POLL_S)
            self._refresh()
            if length <= self._capacity - self.size_bytes:
                room = True
                break
        before, self.waits = self.waits, self.waits + 1
        self.waited_s += time.monotonic() - started
        if warn_again(before, self.waits):
            logger.warning(
                "the SDK's sender process reads its ring slower than this process logs"
                " (it needs a CPU core of its own): logging calls waited for room %d times,"
                " %.1f s in all",
                self.waits,
                self.waited_s,
            )
        return room

    def _record(self, offset: int, body: bytes) -> None:
        self._records += 1
        seq = self._records & 0xFFFFFFFF
        start = HEADER_BYTES + offset + _RECORD.size
        self._memory[start : start + len(body)] = body
        _RECORD.pack_into(
            self._memory, HEADER_BYTES + offset, seq, len(body), zlib.crc32(body, seq)
        )


class RingReader:
    """The sender process's end: moves what the writer appended into an ``EventBuffer``.

    Args:
        memory: the ring (header included), shared with the writer.
        buffer: where the calls and events go, in the order they were written.
    """

    def __init__(self, memory: memoryview, buffer: EventBuffer) -> None:
        self._memory = memory
        self._capacity = len(memory) - HEADER_BYTES
        self._buffer = buffer
        self._read = 0
        self._records = 0
        self._runs: list[RunIdentity] = []
        self._keys: list[str] = []
        self._layouts: dict[int, struct.Struct] = {}
        self._names: dict[tuple[int, ...], tuple[str, ...]] = {}
        self._calls: list[MetricCall] = []

    def read(self, limit_bytes: int = 1 << 62) -> int:
        """Moves complete records into the buffer until calls of about ``limit_bytes``
        (``item_bytes``) went in; how many records it moved. What it leaves waits in
        the ring, so that a buffer the sender lags behind paces the writer instead of
        dropping calls."""
        memory, capacity = self._memory, self._capacity
        layouts, names, runs = self._layouts, self._names, self._runs
        calls = self._calls
        position, records = self._read, self._records
        moved = taken = 0
        while taken < limit_bytes:
            if moved and not moved % _PUBLISH_EVERY:
                self._publish(position, records)
            offset = position % capacity
            to_end = capacity - offset
            if to_end < _MIN_RECORD:
                position += to_end
                continue
            start = HEADER_BYTES + offset
            seq, size, crc = _RECORD.unpack_from(memory, start)
            if seq != (records + 1) & 0xFFFFFFFF or not 0 < size <= to_end - _RECORD.size:
                break
            start += _RECORD.size
            body = memory[start : start + size]
            if zlib.crc32(body, seq) != crc:
                break
            records += 1
            moved += 1
            kind = body[0]
            if kind == _PAD:
                position += to_end
                continue
            position += _RECORD.size + size + (-size) % 4
            if kind != _CALL:
                self._take(bytes(body))
                continue
            _, run, step, timestamp, count = _CALL_HEAD.unpack_from(memory, start)
            layout = layouts.get(count) or layouts.setdefault(count, _layout(count))
            fields = layout.unpack_from(memory, start)
            indexes = fields[_CALL_HEAD_FIELDS : _CALL_HEAD_FIELDS + count]
            keys = names.get(indexes) or self._name(indexes)
            tenant_id, run_id, experiment_name = runs[run]
            points = tuple(zip(keys, fields[_CALL_HEAD_FIELDS + count :], strict=True))
            calls.append((tenant_id, run_id, experiment_name, step, timestamp, points))
            taken += CALL_BYTES + POINT_BYTES * count
        self._read, self._records = position, records
        self._hand_over()
        if moved:
            self._publish(position, records)
        return moved

    def _publish(self, position: int, records: int) -> None:
        """Tells the writer how far this reader has consumed (its room)."""
        read, count = position & _MASK, records & _MASK
        _CONSUMED.pack_into(self._memory, 0, read, count, read ^ _MASK, count ^ _MASK)

    def _name(self, indexes: tuple[int, ...]) -> tuple[str, ...]:
        """The keys of a call's key indexes (kept for the next call with the same keys)."""
        if len(self._names) >= _NAMES_KEPT:
            self._names.clear()
        keys = self._names[indexes] = tuple(map(self._keys.__getitem__, indexes))
        return keys

    def _take(self, body: bytes) -> None:
        """A record other than a call: an event (after the calls read before it), a key
        or a run."""
        kind = body[0]
        if kind == _EVENT:
            self._hand_over()
            self._buffer.add_event(codec.decode(body[1:]))
        elif kind == _KEY:
            self._keys.append(body[_INDEXED.size :].decode())
        elif kind == _RUN:
            self._runs.append(RunIdentity(*_unstrings(body[_INDEXED.size :])))

    def _hand_over(self) -> None:
        """Puts the calls read so far into the buffer, in one go."""
        calls = self._calls
        if calls:
            self._buffer.extend(calls, sum(CALL_BYTES + POINT_BYTES * len(c[5]) for c in calls))
            calls.clear()


def _layout(count: int) -> struct.Struct:
    """A call's record with ``count`` points: its head, their key indexes, their values."""
    return struct.Struct(f"{_CALL_HEAD.format}{count}I{count}d")


def _forked() -> None:
    # The sender process reads for the parent only: a fork's calls would interleave
    # with the parent's.
    for writer in _WRITERS:
        writer.orphan(
            "this process is a fork of the one that started the run, and needs a tracker of its own"
        )


_WRITERS: weakref.WeakSet[RingWriter] = weakref.WeakSet()
os.register_at_fork(after_in_child=_forked)


def _strings(values: Sequence[str]) -> bytes:
    parts = [value.encode() for value in values]
    return b"".join(struct.pack("<H", len(part)) + part for part in parts)


def _unstrings(data: bytes) -> list[str]:
    values = []
    at = 0
    while at < len(data):
        (length,) = struct.unpack_from("<H", data, at)
        values.append(data[at + 2 : at + 2 + length].decode())
        at += 2 + length
    return values
