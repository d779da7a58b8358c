"""An overloading trainer process: ``run.log_metrics`` of four metrics a step, each call
timed, either as fast as the loop goes or paced to a rate.

    python -m tests.bench.overload_trainer '<spec as JSON>'

The spec gives ``duration_s`` and, for a paced burst, ``rate_points_s`` (absent: as
fast as it can), or ``calls`` to log that many as fast as it can; the SDK's
``memory_bytes``, ``spool_max_bytes``, ``compression`` and ``sender``; and how long
to wait for Kafka before the loop (``warm_s``) and at the close (``close_timeout_s``).
``"gc": false`` turns the trainer's cyclic garbage collector off for the loop.
``"floor": true`` times the same loop with no SDK at all (``Floor``) and prints its
calls and latencies only.
Prints one JSON line: the run, calls and points logged, the call latency percentiles,
the peak RSS of this process and its sender process, if any (and their RSS before the
loop), and the SDK's report after ``close``: points spilled to the spool, dropped, and
whether everything was acknowledged.
"""

from __future__ import annotations

import gc
import logging
import time
from array import array
from pathlib import Path
from typing import Any

from ingest.settings import KafkaSettings
from producers import ExperimentTracker, ProducerSettings, RunConfig
from tests.bench.processes import child_result, child_spec
from tests.bench.trainers import EXPERIMENT, KEYS

_PACE_SLEEP_S = 0.001


def rss_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process plus its children's (the
    SDK's sender process), in MB: an overestimate, since the ring they share counts in
    both, and peaks at different moments are added."""
    total = 0.0
    tasks = Path("/proc/self/task").glob("*/children")
    children = [pid for task in tasks for pid in task.read_text().split()]
    for pid in ["self", *children]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # it ended
        for line in status.splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1]) / 1024
    return total


def percentiles(latencies_ns: array[int]) -> dict[str, float]:
    """p50, p99, p99.9 and max of the calls, in microseconds."""
    ordered = sorted(latencies_ns)
    if not ordered:
        return {}

    def at(fraction: float) -> float:
        return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)] / 1000

    return {
        "p50": at(0.5),
        "p99": at(0.99),
        "p99.9": at(0.999),
        "max": ordered[-1] / 1000,
        "over_50us": sum(1 for value in ordered if value > 50_000),
        "over_1ms": sum(1 for value in ordered if value > 1_000_000),
    }


def log(run: Any, spec: dict[str, Any], latencies: array[int]) -> tuple[int, float, float]:
    """Logs as the spec says, timing each call; returns calls and wall-clock loop bounds."""
    clock = time.perf_counter_ns
    calls_max = int(spec.get("calls", 0)) or None
    rate = spec.get("rate_points_s")
    per_s = rate / len(KEYS) if rate else None
    began = time.time()
    end_at = began + float(spec.get("duration_s", 1e9))
    step = 0
    while (calls_max is None or step < calls_max) and time.time() < end_at:
        due = int((time.time() - began) * per_s) + 1 if per_s else step + 1000
        if step >= due:
            time.sleep(_PACE_SLEEP_S)
            continue
        for _ in range(min(due - step, 1000)):
            values = {key: step + i / 10 for i, key in enumerate(KEYS)}
            started = clock()
            run.log_metrics(values, step=step)
            latencies.append(clock() - started)
            step += 1
            if calls_max is not None and step >= calls_max:
                break
    return step, began, time.time()


class Floor:
    """Stands in for the SDK: a call keeps its arguments and a timestamp, nothing more.
    The same loop around it times what the interpreter and the machine cost alone."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, float], int, int]] = []

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        self.calls.append((values, step, time.time_ns() // 1_000_000))


def main() -> None:
    """Runs one trainer as its spec says and prints what it did."""
    logging.basicConfig(level=logging.WARNING)
    spec = child_spec()
    if spec.get("floor"):
        latencies: array[int] = array("q")
        calls, began, ended = log(Floor(), spec, latencies)
        points = calls * len(KEYS)
        child_result(
            {
                "calls": calls,
                "points": points,
                "began": began,
                "ended": ended,
                "call_us": percentiles(latencies),
            }
        )
        return
    settings = ProducerSettings(
        kafka=KafkaSettings(bootstrap_servers=spec["bootstrap"], topic=spec["topic"]),
        spool_dir=spec["spool_dir"],
        memory_bytes=spec["memory_bytes"],
        spool_max_bytes=spec["spool_max_bytes"],
        compression=spec.get("compression", "lz4"),
        sender=spec.get("sender", "process"),
    )
    tracker = ExperimentTracker(settings)
    config = RunConfig(tenant_id=spec["tenant"], run_name=spec["tenant"])
    latencies = array("q")
    with tracker.start_run(EXPERIMENT, config) as run:
        tracker.flush(spec.get("warm_s", 30))  # connected, the run created: a warm SDK
        rss_before = rss_mb("VmRSS")
        if spec.get("gc") is False:
            gc.disable()
        calls, began, ended = log(run, spec, latencies)
        gc.enable()
        peak_in_loop = rss_mb("VmHWM")
        run.end()
        peak_in_loop = max(peak_in_loop, rss_mb("VmHWM"))
    report = tracker.close(spec.get("close_timeout_s", 600))
    acked = time.time()
    child_result(
        {
            "tenant": spec["tenant"],
            "run_id": run.run_id,
            "calls": calls,
            "points": calls * len(KEYS),
            "began": began,
            "ended": ended,
            "acked": acked,
            "rss_before_mb": rss_before,
            "peak_rss_mb": max(peak_in_loop, rss_mb("VmHWM")),
            "latency_array_mb": latencies.buffer_info()[1] * latencies.itemsize / 1e6,
            "call_us": percentiles(latencies),
            "spilled_points": report.spilled_points,
            "dropped_points": report.dropped_points,
            "complete": report.complete,
        }
    )


if __name__ == "__main__":
    main()
