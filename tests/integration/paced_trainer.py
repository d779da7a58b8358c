"""A trainer in a process of its own that logs one run at a steady pace (so that it is
still logging when a broker dies), then prints its close report as JSON.

Run as ``python -m tests.integration.paced_trainer '<spec json>'``."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from producers import ExperimentTracker, RunConfig
from tests.integration.trainers import BASE_TS, KEYS, settings_from, value


def main(spec: dict[str, Any]) -> None:
    tracker = ExperimentTracker(settings_from(spec))
    run = tracker.start_run(
        "failover-exp", RunConfig(tenant_id=spec["tenant"], run_name="paced"), run_id=spec["run_id"]
    )
    run.log_params({"lr": 0.01, "trainer": spec["run_id"][:8]})
    started = time.monotonic()
    for step in range(spec["steps"]):
        run.log_metrics(
            {key: value(i, step) for i, key in enumerate(KEYS)},
            step=step,
            timestamp=BASE_TS + step,
        )
        # Steady pace: step n is logged no earlier than n / rate seconds after the start.
        ahead = step / spec["steps_per_s"] - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    run.end()
    report = tracker.close(spec["flush_timeout_s"])
    print(
        json.dumps(
            {
                "complete": report.complete,
                "spooled_events": report.spooled_events,
                "logging_s": time.monotonic() - started,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
