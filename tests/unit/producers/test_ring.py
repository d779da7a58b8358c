"""The shared-memory ring between a trainer and its sender process: order across laps,
a full ring, records not yet whole, forks, and what a call leaves to the collector."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from ingest.events import EventEnvelope, ParamsLogged, RunEnded, RunStatus
from ingest.ids import new_run_id
from producers.delivery.buffer import EventBuffer, RunIdentity
from producers.delivery.ring import HEADER_BYTES, RingReader, RingWriter, ring_capacity

A = RunIdentity("acme-corp", new_run_id(), "exp")
B = RunIdentity("globex", new_run_id(), "other-exp")


def ring(capacity: int, full_wait_s: float = 0.001) -> tuple[RingWriter, RingReader, EventBuffer]:
    memory = memoryview(bytearray(HEADER_BYTES + capacity))
    buffer = EventBuffer(max_bytes=10**12)
    return RingWriter(memory, full_wait_s), RingReader(memory, buffer), buffer


def params(run: RunIdentity, value: str) -> ParamsLogged:
    return ParamsLogged(
        tenant_id=run.tenant_id,
        run_id=run.run_id,
        experiment_name=run.experiment_name,
        params={"p": value},
    )


def calls(buffer: EventBuffer) -> list[Any]:
    """What reached the buffer: (run, step, timestamp, points) per call, events as is."""
    return [
        item if isinstance(item, EventEnvelope) else (RunIdentity(*item[:3]), *item[3:])
        for item in buffer.drain()
    ]


def test_calls_and_events_arrive_in_order_with_their_runs_keys_and_exact_values() -> None:
    writer, reader, buffer = ring(1024 * 1024)
    writer.add_metrics(A, 0, 1_750_000_000_000, [("loss", 0.1), ("acc", 1e-300)])
    logged = params(A, "x")
    writer.add_event(logged)
    writer.add_metrics(B, -(2**63), 5, [("loss", float("inf")), ("ünïcode/kéy", -0.0)])
    writer.add_metrics(A, 2**63 - 1, 7, [("acc", float("nan"))])
    ended = RunEnded(
        tenant_id=A.tenant_id,
        run_id=A.run_id,
        experiment_name="exp",
        status=RunStatus.FINISHED,
        end_time=9,
    )
    writer.add_event(ended)

    assert reader.read() == 2 + 3 + 3 + 2  # runs, keys, calls and events
    got = calls(buffer)
    assert got[0] == (A, 0, 1_750_000_000_000, (("loss", 0.1), ("acc", 1e-300)))
    assert got[1] == logged
    assert got[2][:3] == (B, -(2**63), 5)
    assert got[2][3][0] == ("loss", float("inf"))
    assert got[2][3][1][0] == "ünïcode/kéy"
    assert str(got[2][3][1][1]) == "-0.0"
    assert got[3][:3] == (A, 2**63 - 1, 7)
    assert math.isnan(got[3][3][0][1])
    assert got[4] == ended
    assert reader.read() == 0
    assert (writer.pending_records, writer.size_bytes) == (0, 0)


def test_many_laps_around_a_small_ring_keep_every_call_once_in_order() -> None:
    writer, reader, buffer = ring(4096)
    steps = []
    for step in range(20_000):
        width = 1 + step % 7  # records of many sizes, so that pads and skips both happen
        writer.add_metrics(A, step, step, [(f"k{i}", step + i / 10) for i in range(width)])
        if step % 13 == 0:
            reader.read()
            steps.extend(item[3] for item in buffer.drain())
    reader.read()
    steps.extend(item[3] for item in buffer.drain())
    assert writer.dropped_points == 0
    assert steps == list(range(20_000))


def test_a_full_ring_waits_for_its_reader_and_loses_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reader slower than the writer (a sender process short of CPU) paces the
    writer: every call waits for room and goes in, none is dropped."""
    writer, reader, buffer = ring(4096, full_wait_s=5.0)
    stop = threading.Event()

    def slow_reader() -> None:
        while not stop.is_set():
            time.sleep(0.002)
            reader.read()

    thread = threading.Thread(target=slow_reader)
    thread.start()
    with caplog.at_level(logging.WARNING, logger="producers"):
        for step in range(2000):
            writer.add_metrics(A, step, 1, [("loss", 1.0), ("acc", 2.0)])
    stop.set()
    thread.join()
    reader.read()
    assert writer.dropped_points == 0
    assert writer.waits > 0
    assert "waited for room" in caplog.text
    assert [item[1] for item in calls(buffer)] == list(range(2000))


def test_a_ring_full_for_too_long_drops_new_metric_calls_counted_and_keeps_every_lifecycle_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer, reader, buffer = ring(4096)
    with caplog.at_level(logging.WARNING, logger="producers"):
        for step in range(200):
            writer.add_metrics(A, step, 1, [("loss", 1.0), ("acc", 2.0)])
        for value in ("a", "b", "c"):
            writer.add_event(params(A, value))
    kept = 4096 // 44  # a call's record: 12 bytes of header, 27 of fields, 2 x 12 of points
    assert writer.dropped_points > 0
    assert [r.getMessage() for r in caplog.records if "dropped the newest" in r.getMessage()]
    assert writer.pending_records >= 3  # the events wait for room, in this process

    reader.read()
    assert writer.flush_waiting()  # room again: the events go in, in order
    reader.read()
    got = calls(buffer)
    metric_steps = [item[1] for item in got if not isinstance(item, EventEnvelope)]
    assert metric_steps == list(range(len(metric_steps)))
    assert len(metric_steps) < kept + 4
    assert writer.dropped_points == 2 * (200 - len(metric_steps))
    assert [item.params["p"] for item in got if isinstance(item, ParamsLogged)] == ["a", "b", "c"]


def test_a_record_not_yet_whole_is_left_until_it_is() -> None:
    """Another CPU may make the header visible before the body: the CRC says so, and the
    reader waits for the record instead of taking what it sees."""
    writer, reader, buffer = ring(4096)
    memory = writer._memory  # noqa: SLF001 (the bytes another process would see)
    writer.add_metrics(A, 1, 1, [("loss", 1.0)])
    writer.add_metrics(A, 2, 1, [("loss", 2.0)])
    whole = bytes(memory)
    last_byte = HEADER_BYTES + writer.size_bytes - 1
    while whole[last_byte] == 0:
        last_byte -= 1
    memory[last_byte] ^= 0xFF
    assert reader.read() == 3  # the run, the key and the first call; not the second
    assert [item[3] for item in buffer.drain()] == [1]
    memory[last_byte] ^= 0xFF
    assert reader.read() == 1
    assert [item[3] for item in buffer.drain()] == [2]


def test_an_event_larger_than_the_ring_is_refused_with_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer, reader, buffer = ring(4096)
    with caplog.at_level(logging.ERROR, logger="producers"):
        writer.add_event(params(A, "v" * 5000))
    assert writer.rejected_events == 1
    assert "more than the SDK's ring" in caplog.text
    writer.add_event(params(A, "fits"))
    reader.read()
    assert [item.params["p"] for item in calls(buffer)] == ["fits"]


def test_a_forked_process_logs_nothing_into_its_parents_ring() -> None:
    writer, reader, buffer = ring(4096)
    pid = os.fork()
    if pid == 0:  # the fork: its calls are dropped, counted, never written
        writer.add_metrics(A, 1, 1, [("loss", 1.0)])
        os._exit(0 if writer.dropped_points == 1 and writer.closed else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert reader.read() == 0
    writer.add_metrics(A, 2, 1, [("loss", 2.0)])
    reader.read()
    assert [item[3] for item in buffer.drain()] == [2]


_LEFT_BEHIND = """
import gc
from producers.delivery.buffer import RunIdentity
from producers.delivery.ring import HEADER_BYTES, RingWriter
writer = RingWriter(memoryview(bytearray(HEADER_BYTES + 16 * 1024 * 1024)))
run = RunIdentity("acme-corp", "0" * 32, "exp")
points = [("loss", 0.5), ("acc", 0.25)]
writer.add_metrics(run, 0, 1, points)  # the run and its keys, once
gc.collect()
before = len(gc.get_objects())
for step in range(10_000):
    writer.add_metrics(run, step, 1, points)
print(len(gc.get_objects()) - before)
"""


def test_a_call_leaves_nothing_for_the_garbage_collector() -> None:
    """What makes a call's tail short: no object the cyclic collector tracks stays
    behind, so the trainer's collections stay rare and small. Counted in an
    interpreter of its own, where no other thread allocates meanwhile."""
    counted = subprocess.run(
        [sys.executable, "-c", _LEFT_BEHIND], capture_output=True, text=True, check=True
    )
    assert int(counted.stdout) < 10


def test_the_ring_takes_a_quarter_of_the_memory_bound_within_2_and_32_mib() -> None:
    mib = 1024 * 1024
    assert ring_capacity(mib) == 2 * mib
    assert ring_capacity(64 * mib) == 16 * mib
    assert ring_capacity(1024 * mib) == 32 * mib
