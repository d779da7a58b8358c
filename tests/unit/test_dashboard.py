"""The Grafana dashboard queries only metrics the worker and producers expose."""

from __future__ import annotations

import json
import re
from pathlib import Path

from consumers.telemetry import WorkerTelemetry
from producers.telemetry import ProducerTelemetry

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "matih-ingest.json"


def exposed_sample_names() -> set[str]:
    names: set[str] = set()
    for registry in (WorkerTelemetry().registry, ProducerTelemetry().registry):
        for family in registry.collect():
            names.add(family.name)
            suffixes = ("_total", "_bucket", "_count", "_sum", "_created")
            names.update(family.name + suffix for suffix in suffixes)
    return names


def test_every_dashboard_query_names_an_exposed_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"matih_ingest_[a-z_]+", target["expr"])
    }
    assert queried, "the dashboard queries nothing"
    assert queried - exposed_sample_names() == set()
