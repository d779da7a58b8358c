"""The buffer between the training loop and the sender: order, packing, the byte bound."""

from __future__ import annotations

import gc
import logging
import time
import tracemalloc
from typing import Any

import pytest

from ingest import codec
from ingest.events import MetricRow, MetricsColumns, ParamsLogged
from ingest.ids import new_run_id
from producers.delivery.buffer import (
    CALL_BYTES,
    POINT_BYTES,
    EventBuffer,
    RunIdentity,
    item_bytes,
    pack,
)
from producers.telemetry import warn_again

A = RunIdentity("acme-corp", new_run_id(), "exp")
B = RunIdentity("acme-corp", new_run_id(), "exp")


def params(run: RunIdentity, value: str) -> ParamsLogged:
    return ParamsLogged(
        tenant_id=run.tenant_id, run_id=run.run_id, experiment_name="exp", params={"p": value}
    )


def decoded(buffer: EventBuffer) -> list[Any]:
    return [codec.decode(outgoing.entry.value) for outgoing in pack(buffer.drain())]


def test_metric_calls_pack_into_events_of_at_most_1000_points() -> None:
    buffer = EventBuffer(max_bytes=10**9)
    for step in range(600):
        buffer.add_metrics(A, step, 1, [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)])
    packed = decoded(buffer)
    assert [e.point_count for e in packed] == [1000, 1000, 400]
    assert [p.step for e in packed for p in e.rows() if p.key == "a"] == list(range(600))
    assert [e.keys for e in packed] == [("a", "b", "c", "d")] * 3


def test_a_call_wider_than_a_record_is_split_across_records() -> None:
    buffer = EventBuffer(max_bytes=10**9)
    buffer.add_metrics(A, 0, 1, [("before", 0.0)])
    buffer.add_metrics(A, 1, 2, [(f"m{i}", float(i)) for i in range(2500)])
    packed = decoded(buffer)
    assert [e.point_count for e in packed] == [1000, 1000, 501]
    rows = [row for e in packed for row in e.rows()]
    assert rows == [MetricRow("before", 0.0, 0, 1)] + [
        MetricRow(f"m{i}", float(i), 1, 2) for i in range(2500)
    ]
    assert [len(e.keys) for e in packed] == [1000, 1000, 501]


def test_each_runs_points_precede_its_next_lifecycle_event() -> None:
    buffer = EventBuffer(max_bytes=10**6)
    buffer.add_metrics(A, 0, 1, [("loss", 1.0)])
    buffer.add_metrics(B, 0, 1, [("loss", 2.0)])
    buffer.add_event(params(A, "1"))
    buffer.add_metrics(A, 1, 1, [("loss", 0.5)])
    packed = decoded(buffer)
    of_a = [e for e in packed if e.run_id == A.run_id]
    assert [type(e).__name__ for e in of_a] == ["MetricsColumns", "ParamsLogged", "MetricsColumns"]
    assert [e.values for e in of_a if isinstance(e, MetricsColumns)] == [(1.0,), (0.5,)]
    of_b = [e for e in packed if e.run_id == B.run_id]
    assert [(type(e).__name__, e.values) for e in of_b] == [("MetricsColumns", (2.0,))]


def test_a_packed_metrics_record_decodes_to_exactly_the_points_logged() -> None:
    """The fast encoder writes what the model would: values (NaN, ±inf, -0.0, the
    extremes of 64 bits), steps and timestamps survive exactly."""
    buffer = EventBuffer(max_bytes=10**6)
    logged = [
        (0, 1, [("loss", float("nan")), ("acc", float("inf"))]),
        (-(2**63), 2**63 - 1, [("loss", -0.0), ("acc", float("-inf"))]),
        (7, 1_700_000_000_123, [("loss", 0.1 + 0.2), ("lr", 5e-324)]),
    ]
    for step, timestamp, points in logged:
        buffer.add_metrics(A, step, timestamp, points)
    (outgoing,) = pack(buffer.drain())
    event = codec.decode(outgoing.entry.value)
    expected = MetricsColumns(
        event_id=outgoing.event.event_id,
        occurred_at=outgoing.event.occurred_at,
        tenant_id=A.tenant_id,
        run_id=A.run_id,
        experiment_name=A.experiment_name,
        keys=("loss", "acc", "lr"),
        key_index=(0, 1, 0, 1, 0, 2),
        values=tuple(value for _, _, points in logged for _, value in points),
        steps=(0, 0, -(2**63), -(2**63), 7, 7),
        timestamps=(1, 1, 2**63 - 1, 2**63 - 1, 1_700_000_000_123, 1_700_000_000_123),
    )
    assert outgoing.entry.value == codec.encode(expected)
    assert event.model_dump_json() == expected.model_dump_json()
    assert outgoing.entry.points == 6


@pytest.mark.parametrize("width", [1, 4, 10, 50])
def test_the_byte_estimate_covers_what_a_buffered_call_takes(width: int) -> None:
    """What the buffer counts per call is at least what tracemalloc sees it take."""
    keys = [f"metric_{i}" for i in range(width)]
    buffer = EventBuffer(max_bytes=10**9)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for step in range(5000):
        buffer.add_metrics(A, step, 1_700_000_000_000 + step, [(k, step * 0.5) for k in keys])
    taken = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert taken <= buffer.size_bytes == 5000 * (CALL_BYTES + width * POINT_BYTES)
    buffer.drain()
    assert buffer.size_bytes == 0


def test_a_call_never_waits_and_past_its_share_the_oldest_points_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The share is only reached when the sender is starved; then the call still returns
    at once, the oldest metric calls go, and lifecycle events stay."""
    event_bytes = item_bytes(params(A, "1"))
    buffer = EventBuffer(max_bytes=event_bytes + 2 * (CALL_BYTES + POINT_BYTES))
    buffer.add_event(params(A, "1"))
    buffer.add_metrics(A, 0, 1, [("loss", 1.0)])
    buffer.add_metrics(A, 1, 1, [("loss", 2.0)])
    with caplog.at_level(logging.WARNING):
        started = time.perf_counter()
        buffer.add_metrics(A, 2, 1, [("loss", 3.0)])
        buffer.add_metrics(A, 3, 1, [("loss", 4.0)])
        elapsed = time.perf_counter() - started
    assert elapsed < 0.01
    assert buffer.dropped_points == 2
    assert "dropped the oldest metric points, 1 so far" in caplog.text
    packed = decoded(buffer)
    assert [type(e).__name__ for e in packed] == ["ParamsLogged", "MetricsColumns"]
    assert packed[1].steps == (2, 3)
    assert buffer.size_bytes == 0

    tiny = EventBuffer(max_bytes=event_bytes)
    tiny.add_event(params(A, "1"))
    tiny.add_event(params(A, "2"))  # past the share: kept all the same
    assert [e.params for e in decoded(tiny)] == [{"p": "1"}, {"p": "2"}]
    assert tiny.dropped_points == 0


def test_buffered_calls_leave_the_garbage_collectors_reach() -> None:
    """The collector untracks the calls held (a tuple once its items are untracked: a
    call's points, then the call, over the first few collections it survives), so later
    full collections, which stop every thread, never walk them."""
    buffer = EventBuffer(max_bytes=10**9)
    for step in range(1000):
        buffer.add_metrics(A, step, 1, [("loss", step * 0.5), ("acc", 0.25)])
    for _ in range(3):
        gc.collect()
    held = buffer.drain()
    assert len(held) == 1000
    assert not any(gc.is_tracked(call) for call in held)


def test_drops_are_warned_about_at_the_first_and_then_at_each_power_of_ten() -> None:
    """A long overload logs a few lines, not one per batch dropped."""
    assert [n for n in range(1, 20_001) if warn_again(n - 1, n)] == [1, 10, 100, 1000, 10_000]
    assert warn_again(0, 4000)
    assert warn_again(900, 1100)
    assert not warn_again(1100, 1100)
    assert not warn_again(1100, 9000)


def test_the_sender_takes_every_call_at_once_and_they_count_until_packed() -> None:
    """One swap under the lock hands the sender all that is buffered (an append never
    waits behind a sender in the middle of a long take); the calls taken still count
    against the bound until the sender has packed them and says so."""
    buffer = EventBuffer(max_bytes=10**6)
    for step in range(10):
        buffer.add_metrics(A, step, 1, [("loss", 1.0)])
    held = buffer.size_bytes
    taken = buffer.take()
    assert [call[3] for call in taken] == list(range(10))
    assert len(buffer) == 0
    assert buffer.size_bytes == held
    buffer.add_metrics(A, 10, 1, [("loss", 1.0)])  # meanwhile, appends go on
    buffer.release(sum(map(item_bytes, taken)))
    assert buffer.size_bytes == CALL_BYTES + POINT_BYTES
    assert [call[3] for call in buffer.drain()] == [10]
