"""The event contract: every kind round-trips; bad input is refused with the field and rule."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pytest

from ingest import codec
from ingest.errors import InvalidEventError
from ingest.events import (
    ArtifactLogged,
    MetricPoint,
    MetricsLogged,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
    TagsSet,
)
from ingest.ids import new_run_id

RUN = new_run_id()
BASE = {"tenant_id": "acme-corp", "run_id": RUN, "experiment_name": "fraud-detection-v3"}
EVENTS = [
    RunCreated(
        **BASE, run_name="xgb", description="d", tags={"a": "b"}, user_id="alice", start_time=1
    ),
    MetricsLogged(**BASE, metrics=(MetricPoint(key="val_loss", value=0.5, step=3, timestamp=17),)),
    ParamsLogged(**BASE, params={"learning_rate": "0.01"}),
    TagsSet(**BASE, tags={"model_type": "xgboost"}),
    RunEnded(**BASE, status=RunStatus.FINISHED, end_time=2),
    ArtifactLogged(**BASE, path="model/weights.bin", size=3, sha256="ab" * 32),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_every_kind_round_trips_through_the_wire_format(event: object) -> None:
    assert codec.decode(codec.encode(event)) == event  # type: ignore[arg-type]


def test_headers_carry_kind_tenant_and_schema_version() -> None:
    headers = dict(codec.headers(EVENTS[1]))
    assert headers == {
        "matih-kind": b"metrics.logged",
        "matih-tenant": b"acme-corp",
        "matih-schema-version": b"1",
    }


def test_nan_and_infinity_survive_the_wire() -> None:
    event = MetricsLogged(
        **BASE,
        metrics=(
            MetricPoint(key="a", value=math.nan, timestamp=1),
            MetricPoint(key="b", value=math.inf, timestamp=1),
        ),
    )
    decoded = codec.decode(codec.encode(event))
    assert isinstance(decoded, MetricsLogged)
    assert math.isnan(decoded.metrics[0].value)
    assert decoded.metrics[1].value == math.inf


def test_events_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        EVENTS[2].tenant_id = "other"  # type: ignore[misc]


def test_occurred_at_is_timezone_aware() -> None:
    assert EVENTS[0].occurred_at.tzinfo is not None
    with pytest.raises(ValueError, match="occurred_at"):
        ParamsLogged(**BASE, params={}, occurred_at=datetime(2026, 1, 1))  # naive


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"not json", "Invalid JSON"),
        (b"", "record has no value"),
        (json.dumps({"kind": "run.exploded", **BASE}).encode(), "kind"),
        (json.dumps({"kind": "params.logged", **BASE}).encode(), "params: Field required"),
        (
            json.dumps({"kind": "params.logged", **BASE, "run_id": "x", "params": {}}).encode(),
            "run_id: Value error, run id 'x' must be 32 lowercase hex digits",
        ),
        (
            json.dumps(
                {"kind": "params.logged", **BASE, "tenant_id": "a b", "params": {}}
            ).encode(),
            "tenant_id: Value error, tenant id 'a b' must be 1-64 letters",
        ),
        (
            json.dumps(
                {
                    "kind": "metrics.logged",
                    **BASE,
                    "metrics": [{"key": "../x", "value": 1, "timestamp": 1}],
                }
            ).encode(),
            "metrics.0.key: Value error, key '../x' would resolve to the path",
        ),
        (
            json.dumps(
                {
                    "kind": "metrics.logged",
                    **BASE,
                    "metrics": [{"key": "a", "value": "high", "timestamp": 1}],
                }
            ).encode(),
            "metrics.0.value: Input should be a valid number",
        ),
        (
            json.dumps({"kind": "run.ended", **BASE, "status": "running", "end_time": 1}).encode(),
            "status: Value error, status 'running' does not end a run",
        ),
        (
            json.dumps({"kind": "params.logged", **BASE, "params": {"p": "x" * 6001}}).encode(),
            "param 'p' value is 6001 characters; at most 6000",
        ),
        (
            json.dumps(
                {
                    "kind": "metrics.logged",
                    **BASE,
                    "metrics": [{"key": "a", "value": 1, "timestamp": 2**63}],
                }
            ).encode(),
            "metrics.0.timestamp: Input should be less than or equal to 9223372036854775807",
        ),
        (
            json.dumps(
                {"kind": "run.ended", **BASE, "status": "failed", "end_time": 2**64}
            ).encode(),
            "end_time: Input should be less than or equal to 9223372036854775807",
        ),
    ],
)
def test_decode_names_the_field_and_the_rule(value: bytes, message: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        codec.decode(value)
    assert message in str(caught.value)


def test_a_metrics_event_holds_at_most_1000_points() -> None:
    points = tuple(MetricPoint(key="a", value=1.0, step=i, timestamp=1) for i in range(1001))
    with pytest.raises(ValueError, match="at most 1000"):
        MetricsLogged(**BASE, metrics=points)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"path": "../etc/passwd"}, "escapes the run's artifact root"),
        ({"path": "/abs/file"}, "escapes the run's artifact root"),
        ({"path": "a\\b"}, "escapes the run's artifact root"),
        ({"path": "x" * 236}, "at most 235"),
        ({"size": -1}, "greater than or equal to 0"),
        ({"sha256": "ABC"}, "should match pattern"),
    ],
)
def test_an_artifact_event_refuses_an_escaping_path_a_negative_size_and_a_bad_hash(
    fields: dict[str, object], message: str
) -> None:
    good: dict[str, object] = {"path": "model.pkl", "size": 1, "sha256": "0" * 64}
    with pytest.raises(ValueError, match=message):
        ArtifactLogged(**BASE, **{**good, **fields})  # type: ignore[arg-type]
