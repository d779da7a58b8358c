"""One spool segment file: append-only, length-prefixed records, each with a CRC.

Record layout (big-endian)::

    magic b"MS" | length u32 | crc32 u32 | points u32 | payload (length bytes)

``points`` is the number of metric points the payload holds (0 for a lifecycle
event), so the spool's full policy can drop metric records without decoding them.
The CRC covers ``points`` and the payload. Opening a segment scans it: the first
record that is torn (the process died mid-write) or fails its CRC ends the segment,
and the file is truncated there, so a crash loses at most the batch being written.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

MAGIC = b"MS"
_HEADER = struct.Struct(">2sIII")
_CRC_PIECE = 4096
"""Bytes per ``zlib.crc32`` call: under the size at which it releases the GIL."""
HEADER_BYTES = _HEADER.size
MAX_RECORD_BYTES = 16 * 1024 * 1024
"""A length field beyond this is corruption, not a record (events are far smaller)."""
SUFFIX = ".seg"
_IOV_MAX = 1024
"""Buffers one ``writev`` takes at most (Linux's ``IOV_MAX``)."""


class SegmentFile(Protocol):
    """An open segment file, written at its end: ``open_segment``'s, or a stand-in whose
    disk fails."""

    def write(self, pieces: Sequence[bytes]) -> None:
        """Appends ``pieces`` in order, all of them. Raises OSError as the disk does
        (ENOSPC when full)."""

    def sync(self) -> None:
        """Puts what was written on disk (fsync)."""

    def close(self) -> None:
        """Closes the file."""


FileOpener = Callable[[Path, bool], SegmentFile]
"""How segment files are opened (``path``, ``truncate``): ``open_segment``, or a stand-in
whose disk fails."""


class _OsFile:
    """A segment file written with ``os.writev``: one system call for a whole batch of
    records, headers and payloads side by side, without joining them into one copy.

    Each system call releases Python's GIL, and the sender thread that gives it up
    waits for a training loop that never sleeps to hand it back (up to the 5 ms switch
    interval): the file stays open while it is written, and a batch is one call."""

    __slots__ = ("_fd",)

    def __init__(self, path: Path, truncate: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if truncate else os.O_APPEND)
        self._fd = os.open(path, flags, 0o600)

    def write(self, pieces: Sequence[bytes]) -> None:
        pending = [memoryview(piece) for piece in pieces if piece]
        first = 0
        while first < len(pending):
            written = os.writev(self._fd, pending[first : first + _IOV_MAX])
            while written and first < len(pending):
                piece = pending[first]
                if written < len(piece):
                    pending[first] = piece[written:]  # a short write: the rest goes next
                    break
                written -= len(piece)
                first += 1

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def open_segment(path: Path, truncate: bool) -> SegmentFile:
    """Opens (creating) a segment file to append to, or to rewrite with ``truncate``."""
    return _OsFile(path, truncate)


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """What is written: an encoded event and its metric point count (0: lifecycle)."""

    value: bytes
    points: int

    @property
    def size(self) -> int:
        """Bytes on disk, header included."""
        return HEADER_BYTES + len(self.value)


@dataclass
class Segment:
    """A segment's file and an index of its records (points and offset of each).

    While it is the one being written (not ``sealed``), its file stays open.
    """

    path: Path
    number: int
    points: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    """Where each record begins in the file."""
    size: int = 0
    sealed: bool = False
    epoch: int = 0
    """Bumped when the segment is rewritten; acks of an older epoch are ignored."""
    acked: set[int] = field(default_factory=set)
    file: SegmentFile | None = field(default=None, repr=False)

    @classmethod
    def create(cls, directory: Path, number: int, open_file: FileOpener = open_segment) -> Segment:
        """A new, empty segment file, open to be written."""
        path = directory / f"{number:010d}{SUFFIX}"
        return cls(path, number, file=open_file(path, False))

    @classmethod
    def recover(cls, path: Path) -> Segment:
        """Opens a segment left on disk, truncating a torn or corrupt tail."""
        data = path.read_bytes()
        segment = cls(path, int(path.stem), sealed=True)
        offset = 0
        for points, length, end in _scan(data):
            segment.points.append(points)
            segment.starts.append(end - length - HEADER_BYTES)
            offset = end
        if offset < len(data):
            logger.warning(
                "spool segment %s: %d bytes after record %d are torn or corrupt (a crash"
                " mid-write); truncated there",
                path,
                len(data) - offset,
                len(segment.points),
            )
            with path.open("r+b") as handle:
                handle.truncate(offset)
                os.fsync(handle.fileno())
        segment.size = offset
        return segment

    @property
    def count(self) -> int:
        """Records in the segment."""
        return len(self.points)

    def append(self, entries: list[SpoolEntry], open_file: FileOpener = open_segment) -> None:
        """Appends records with one write (on disk after ``sync``; a killed process does
        not lose them once this returns: they are in the kernel's page cache).

        Raises:
            OSError: the write failed; the segment is cut back to its records and sealed,
                so no later record lands behind a torn one (which a recovery would cut).
        """
        pieces: list[bytes] = []
        for entry in entries:
            pieces.append(record_header(entry))
            pieces.append(entry.value)
        try:
            if self.file is None:
                self.file = open_file(self.path, False)
            self.file.write(pieces)
        except OSError:
            self.seal()
            with contextlib.suppress(OSError):
                os.truncate(self.path, self.size)
            raise
        for entry in entries:
            self.points.append(entry.points)
            self.starts.append(self.size)
            self.size += entry.size

    def sync(self) -> None:
        """fsyncs what was written, if the file is open.

        Raises:
            OSError: the disk refused.
        """
        if self.file is not None:
            self.file.sync()

    def seal(self) -> None:
        """No more records go here: the file is closed."""
        self.sealed = True
        file, self.file = self.file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def read(self, first: int = 0, max_bytes: int | None = None) -> list[SpoolEntry]:
        """Records from index ``first`` on, in order: all of them, or as many as fit in
        ``max_bytes`` (at least one), read with one system call."""
        if first >= self.count:
            return []
        begin = self.starts[first]
        last = self.count
        if max_bytes is not None and begin + max_bytes < self.size:
            last = max(first + 1, bisect.bisect_right(self.starts, begin + max_bytes) - 1)
        end = self.starts[last] if last < self.count else self.size
        descriptor = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(descriptor, end - begin, begin)
        finally:
            os.close(descriptor)
        return [
            SpoolEntry(data[stop - length : stop], points) for points, length, stop in _scan(data)
        ][: last - first]

    def rewrite(
        self, keep: list[SpoolEntry], fsync: bool, open_file: FileOpener = open_segment
    ) -> None:
        """Replaces the segment's records with ``keep`` (atomically, by rename); it is
        sealed."""
        self.seal()
        temporary = self.path.with_suffix(".tmp")
        file = open_file(temporary, True)
        try:
            file.write([piece for entry in keep for piece in (record_header(entry), entry.value)])
            if fsync:
                file.sync()
        finally:
            file.close()
        temporary.replace(self.path)
        self.points = [entry.points for entry in keep]
        self.starts = []
        self.size = 0
        for entry in keep:
            self.starts.append(self.size)
            self.size += entry.size
        self.acked = set()
        self.epoch += 1


def record_crc(payload: bytes, points: int) -> int:
    """The CRC-32 of a record's point count and payload, taken in pieces too small for
    zlib to release the GIL (it does above 5 KiB): the sender reads and writes the spool
    while a training loop runs on every core it gets, and a thread that gives the GIL
    up waits a whole switch interval (5 ms) to have it back. One release per record
    (~30 KB) was most of what made a spilling sender slower than the trainer."""
    crc = zlib.crc32(struct.pack(">I", points))
    view = memoryview(payload)
    for start in range(0, len(view), _CRC_PIECE):
        crc = zlib.crc32(view[start : start + _CRC_PIECE], crc)
    return crc


def record_header(entry: SpoolEntry) -> bytes:
    """The header of one record (its payload follows it)."""
    crc = record_crc(entry.value, entry.points)
    return _HEADER.pack(MAGIC, len(entry.value), crc, entry.points)


def _scan(data: bytes) -> list[tuple[int, int, int]]:
    """(points, length, end offset) of each intact record, stopping at the first bad one."""
    records = []
    offset = 0
    while offset + HEADER_BYTES <= len(data):
        magic, length, crc, points = _HEADER.unpack_from(data, offset)
        end = offset + HEADER_BYTES + length
        if magic != MAGIC or length > MAX_RECORD_BYTES or end > len(data):
            break
        payload = data[offset + HEADER_BYTES : end]
        if record_crc(payload, points) != crc:
            break
        records.append((points, length, end))
        offset = end
    return records
