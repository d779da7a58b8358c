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

import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

MAGIC = b"MS"
_HEADER = struct.Struct(">2sIII")
_CRC_PIECE = 4096
"""Bytes per ``zlib.crc32`` call: under the size at which it releases the GIL."""
HEADER_BYTES = _HEADER.size
MAX_RECORD_BYTES = 16 * 1024 * 1024
"""A length field beyond this is corruption, not a record (events are far smaller)."""
SUFFIX = ".seg"


def write_file(path: Path, data: bytes, mode: str, fsync: bool) -> None:
    """Writes ``data`` to ``path`` (``mode`` ``"ab"`` or ``"wb"``); with ``fsync`` it is on
    disk when this returns. Raises OSError as the disk does (ENOSPC when full)."""
    with path.open(mode) as handle:
        handle.write(data)
        handle.flush()
        if fsync:
            os.fsync(handle.fileno())


FileWriter = Callable[[Path, bytes, str, bool], None]
"""How segment files are written: ``write_file``, or a stand-in whose disk fails."""


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
    """A segment's file and an index of its records (points per record)."""

    path: Path
    number: int
    points: list[int] = field(default_factory=list)
    size: int = 0
    sealed: bool = False
    epoch: int = 0
    """Bumped when the segment is rewritten; acks of an older epoch are ignored."""
    acked: set[int] = field(default_factory=set)

    @classmethod
    def create(cls, directory: Path, number: int) -> Segment:
        """A new, empty segment file."""
        path = directory / f"{number:010d}{SUFFIX}"
        path.touch()
        return cls(path, number)

    @classmethod
    def recover(cls, path: Path) -> Segment:
        """Opens a segment left on disk, truncating a torn or corrupt tail."""
        data = path.read_bytes()
        segment = cls(path, int(path.stem), sealed=True)
        offset = 0
        for points, _, end in _scan(data):
            segment.points.append(points)
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

    @property
    def done(self) -> bool:
        """Sealed and every record acknowledged: the file may go."""
        return self.sealed and len(self.acked) >= self.count

    def append(
        self, entries: list[SpoolEntry], fsync: bool, write: FileWriter = write_file
    ) -> None:
        """Appends records; with ``fsync`` they are on disk when this returns.

        Raises:
            OSError: the write failed; the segment is cut back to its records and sealed,
                so no later record lands behind a torn one (which a recovery would cut).
        """
        try:
            write(self.path, b"".join(encode_record(entry) for entry in entries), "ab", fsync)
        except OSError:
            self.sealed = True
            with contextlib.suppress(OSError):
                os.truncate(self.path, self.size)
            raise
        self.points.extend(entry.points for entry in entries)
        self.size += sum(entry.size for entry in entries)

    def read(self) -> list[SpoolEntry]:
        """Every record of the segment, in order."""
        data = self.path.read_bytes()
        return [
            SpoolEntry(data[end - length : end], points) for points, length, end in _scan(data)
        ][: self.count]

    def rewrite(self, keep: list[SpoolEntry], fsync: bool, write: FileWriter = write_file) -> None:
        """Replaces the segment's records with ``keep`` (atomically, by rename)."""
        temporary = self.path.with_suffix(".tmp")
        write(temporary, b"".join(encode_record(entry) for entry in keep), "wb", fsync)
        temporary.replace(self.path)
        self.points = [entry.points for entry in keep]
        self.size = sum(entry.size for entry in keep)
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


def encode_record(entry: SpoolEntry) -> bytes:
    """The bytes of one record."""
    crc = record_crc(entry.value, entry.points)
    return _HEADER.pack(MAGIC, len(entry.value), crc, entry.points) + entry.value


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
