"""A trainer pays for the SDK only: ``import producers`` is fast, small, and loads no
Kafka client, no Prometheus client and no MLflow, FastAPI or SQLAlchemy (aiokafka comes
with a tracker's first run, prometheus_client with a ``ProducerTelemetry``, the rest with
the first read that needs them).

The time is held in two parts, measured in one fresh interpreter: the SDK's own
modules (imported after its third-party dependencies, so only what this project adds
is counted) and the whole import. The SDK's own part is what this project controls,
and it is held to its budget on any machine; the whole import is mostly pydantic's
(defining a first model costs 0.17-0.27 s of CPU here, in a virtualenv of pydantic
alone too) and depends on the machine and the dependencies' releases as much as on
this project, so it is held to a ceiling that still fails at once if a heavy library
comes back.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

OWN_BUDGET_S = 0.2
"""CPU time of the SDK's own modules, after its dependencies (median of RUNS).
Measured: 0.04-0.07 s on 2 idle cores (0.07-0.13 s before aiokafka and
prometheus_client were deferred)."""
TOTAL_CEILING_S = 1.0
"""CPU time of the whole ``import producers``: measured 0.28-0.47 s here, median 0.36
(0.54-0.60 s with aiokafka and prometheus_client); before the contract was made pure
it was 1.4 s, with MLflow and FastAPI."""
RSS_BUDGET_MB = 80.0
"""Peak resident memory of that interpreter after the import (its own high-water mark:
``getrusage`` would report the larger test process it was forked from). Measured 36 MB
(43-47 MB with aiokafka and prometheus_client; 171 MB with MLflow and FastAPI)."""
RUNS = 5
NOT_LOADED = ("aiokafka", "prometheus_client", "mlflow", "fastapi", "sqlalchemy")
DEPENDENCIES = ("pydantic", "pydantic_settings")
"""The third-party packages the SDK imports at start (the event loop comes with
pydantic-settings)."""

_PROBE = """
import json, sys, time
cpu = time.process_time()
import asyncio, %s
dependencies, cpu = time.process_time() - cpu, time.process_time()
import producers
own = time.process_time() - cpu
print(json.dumps({
    "dependencies": dependencies,
    "own": own,
    "rss_mb": next(
        int(line.split()[1]) / 1024
        for line in open("/proc/self/status")
        if line.startswith("VmHWM:")
    ),
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in %r),
}))
"""


def _measure() -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE % (", ".join(DEPENDENCIES), NOT_LOADED)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    figures: dict[str, object] = json.loads(result.stdout)
    return figures


def test_importing_the_sdk_is_cheap_and_loads_no_reader_or_server() -> None:
    runs = [_measure() for _ in range(RUNS)]
    own = statistics.median(float(str(run["own"])) for run in runs)
    total = statistics.median(
        float(str(run["own"])) + float(str(run["dependencies"])) for run in runs
    )
    rss = statistics.median(float(str(run["rss_mb"])) for run in runs)
    assert runs[0]["loaded"] == []
    assert own <= OWN_BUDGET_S, f"the SDK's own modules took {own:.3f}s of CPU to import"
    assert total <= TOTAL_CEILING_S, f"import producers took {total:.3f}s of CPU in all"
    assert rss <= RSS_BUDGET_MB, f"and {rss:.1f} MB resident"
