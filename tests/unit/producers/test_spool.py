"""The on-disk spool: round trip, crash recovery, the full policy, and the lock."""

from __future__ import annotations

import logging
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from ingest import codec
from ingest.events import MetricPoint, MetricsLogged, RunEnded, RunStatus
from producers.errors import SpoolBusyError
from producers.spool.directory import EventSpool, is_live, list_spools
from producers.spool.segment import SpoolEntry, record_crc

RUN = "0192f0c1a2b37c4d8e9fa0b1c2d3e4f5"


def metrics_entry(step: int, points: int = 10) -> SpoolEntry:
    event = MetricsLogged(
        tenant_id="acme-corp",
        run_id=RUN,
        experiment_name="exp",
        metrics=tuple(
            MetricPoint(key=f"m{i}", value=step + i / 10, step=step, timestamp=1_700_000_000_000)
            for i in range(points)
        ),
    )
    return SpoolEntry(codec.encode(event), points)


def ended_entry() -> SpoolEntry:
    event = RunEnded(tenant_id="acme-corp", run_id=RUN, status=RunStatus.FINISHED, end_time=1)
    return SpoolEntry(codec.encode(event), 0)


def drain(spool: EventSpool) -> list[SpoolEntry]:
    records = spool.read(1_000_000)
    for record in records:
        spool.ack(record)
    return [SpoolEntry(record.value, record.points) for record in records]


def test_round_trip_keeps_every_byte_in_order(tmp_path: Path) -> None:
    """What goes in comes out in order and byte for byte, across segments and reopen;
    acked segments are deleted and an empty spool removes its directory on close."""
    entries = [metrics_entry(step) for step in range(300)] + [ended_entry()]
    spool = EventSpool(tmp_path / "s", max_bytes=1_000_000, owner={"topic": "t"})
    spool.append(entries[:150])
    spool.append(entries[150:])
    assert spool.events == 301
    assert spool.points == 3000
    assert len(list((tmp_path / "s").glob("*.seg"))) > 1
    spool.close()

    reopened = EventSpool(tmp_path / "s", max_bytes=1_000_000)
    assert reopened.owner()["topic"] == "t"
    assert drain(reopened) == entries
    assert reopened.events == 0
    assert reopened.size_bytes == 0
    assert list((tmp_path / "s").glob("*.seg")) == []
    decoded = codec.decode(entries[7].value)
    assert isinstance(decoded, MetricsLogged)
    assert decoded.metrics[3].value == 7.3
    assert reopened.close() is True
    assert not (tmp_path / "s").exists()


def test_rewind_resends_only_unacked_records(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "s", max_bytes=10_000_000)
    spool.append([metrics_entry(step) for step in range(5)])
    first = spool.read(5)
    spool.ack(first[0])
    spool.ack(first[2])
    assert spool.read(5) == []
    spool.rewind()
    assert [record.index for record in spool.read(10)] == [1, 3, 4]
    assert spool.events == 3


def test_a_torn_tail_is_cut_and_the_rest_recovered(tmp_path: Path) -> None:
    """A process killed mid-write leaves a partial record: reopening keeps every whole
    record before it and truncates the rest; a flipped byte stops the scan the same way."""
    entries = [metrics_entry(step) for step in range(3)]
    spool = EventSpool(tmp_path / "s", max_bytes=10_000_000)
    spool.append(entries)
    spool.close()
    (segment,) = (tmp_path / "s").glob("*.seg")
    whole = segment.read_bytes()
    segment.write_bytes(whole + whole[: len(whole) // 5])  # a torn fourth record

    recovered = EventSpool(tmp_path / "s", max_bytes=10_000_000)
    assert recovered.events == 3
    assert segment.stat().st_size == len(whole)
    assert drain(recovered) == entries
    recovered.close()

    corrupt = bytearray(whole)
    corrupt[-5] ^= 0xFF  # inside the third record's payload
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / segment.name).write_bytes(bytes(corrupt))
    assert drain(EventSpool(tmp_path / "c", max_bytes=10_000_000)) == entries[:2]


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 30_001])
def test_a_record_crc_is_zlibs_over_the_whole_record(size: int) -> None:
    """Taken in pieces (so that zlib keeps the GIL), the CRC is the one over the
    whole record: spools written before still read, and these read there."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert record_crc(payload, 7) == zlib.crc32(struct.pack(">I", 7) + payload)


def test_a_flipped_byte_deep_in_a_large_record_stops_the_scan(tmp_path: Path) -> None:
    entries = [metrics_entry(step, points=500) for step in range(2)]
    assert all(len(entry.value) > 5 * 4096 for entry in entries)
    spool = EventSpool(tmp_path / "s", max_bytes=10_000_000)
    spool.append(entries)
    spool.close()
    (segment,) = (tmp_path / "s").glob("*.seg")
    corrupt = bytearray(segment.read_bytes())
    corrupt[-3 * 4096] ^= 0x01  # in the second record, pieces after its first
    segment.write_bytes(bytes(corrupt))
    assert drain(EventSpool(tmp_path / "s", max_bytes=10_000_000)) == entries[:1]


def test_full_spool_drops_oldest_metric_points_and_keeps_lifecycle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Full: the oldest metric records go (counted, warned), lifecycle events stay, and
    the spool is back within its bound."""
    one = metrics_entry(0).size
    spool = EventSpool(tmp_path / "s", max_bytes=one * 20)
    spool.append([ended_entry()])
    spool.append([metrics_entry(step) for step in range(1, 18)])
    before = spool.size_bytes
    with caplog.at_level(logging.WARNING):
        spool.append([metrics_entry(step) for step in range(100, 110)])
    assert spool.dropped_points > 0
    assert spool.dropped_points % 10 == 0
    assert spool.size_bytes <= one * 20
    assert before <= one * 20
    assert "dropped the oldest metric points" in caplog.text
    left = [codec.decode(entry.value) for entry in drain(spool)]
    assert isinstance(left[0], RunEnded)
    steps = [event.metrics[0].step for event in left if isinstance(event, MetricsLogged)]
    assert steps == sorted(steps)
    assert steps[-10:] == list(range(100, 110))
    assert len(steps) * 10 + spool.dropped_points == 270
    assert spool.points == 0


def test_lifecycle_events_are_kept_even_beyond_the_bound(tmp_path: Path) -> None:
    one = ended_entry().size
    spool = EventSpool(tmp_path / "s", max_bytes=one * 3)
    spool.append([ended_entry() for _ in range(5)])
    spool.append([metrics_entry(1)])
    assert spool.events == 5
    assert spool.dropped_points == 10


def test_the_lock_keeps_a_live_spool_from_a_second_opener(tmp_path: Path) -> None:
    """While its owner holds it, a spool cannot be opened (so never drained twice);
    once the owner closes it (or dies), it can."""
    owner = EventSpool.create(tmp_path, 10_000_000, True, owner={"topic": "t"})
    owner.append([metrics_entry(1)])
    assert owner.path.stat().st_mode & 0o777 == 0o700  # events may hold private params
    assert is_live(owner.path)
    with pytest.raises(SpoolBusyError, match="live process") as caught:
        EventSpool(owner.path, max_bytes=10_000_000)
    assert caught.value.retriable
    (info,) = list_spools(tmp_path)
    assert info.live
    assert info.owner["topic"] == "t"
    assert info.size_bytes > 0
    assert owner.close() is False  # not empty: the directory stays
    assert not is_live(owner.path)
    assert len(drain(EventSpool(owner.path, max_bytes=10_000_000))) == 1


def test_records_appended_after_a_full_drain_are_read(tmp_path: Path) -> None:
    """Once every segment was acked and deleted, new records still come out (segment
    numbers only grow, so the cursor never skips a new segment)."""
    spool = EventSpool(tmp_path / "s", max_bytes=1_000_000)
    spool.append([metrics_entry(step) for step in range(3)])
    assert len(drain(spool)) == 3
    assert spool.events == 0
    later = [metrics_entry(step) for step in range(3, 6)]
    spool.append(later)
    assert drain(spool) == later


def test_a_killed_owner_releases_its_spool_with_everything_it_wrote(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to clean up: the kernel drops the lock, and every batch
    the owner had written is there for ``spool flush``."""
    script = f"""
import os, signal
from pathlib import Path
from producers.spool.segment import SpoolEntry, record_crc
from producers.spool.directory import EventSpool
spool = EventSpool(Path({str(tmp_path / "s")!r}), max_bytes=1_000_000)
spool.append([SpoolEntry(b"event-%d" % i, 1) for i in range(50)])
os.kill(os.getpid(), signal.SIGKILL)
"""
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", script], env={"PYTHONPATH": str(root)}, check=False, timeout=60
    )
    assert done.returncode == -signal.SIGKILL
    assert not is_live(tmp_path / "s")
    assert [entry.value for entry in drain(EventSpool(tmp_path / "s", 1_000_000))] == [
        b"event-%d" % i for i in range(50)
    ]
