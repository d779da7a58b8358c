"""The compact metrics event (schema version 2): the same points as version 1 in
columns, under the same rules, and the same rows once decoded."""

from __future__ import annotations

import json
import math

import pytest

from ingest import codec
from ingest.errors import InvalidEventError
from ingest.events import MetricPoint, MetricRow, MetricsColumns, MetricsLogged
from ingest.ids import new_run_id

BASE = {"tenant_id": "acme-corp", "run_id": new_run_id(), "experiment_name": "exp"}
# Values at the edges of what both versions carry: NaN, ±inf, -0.0, the smallest
# subnormal, a float that only repr round-trips, and the extremes of 64-bit steps.
POINTS = [
    ("loss", math.nan, 0, 1),
    ("acc", math.inf, 0, 1),
    ("loss", -0.0, -(2**63), 2**63 - 1),
    ("acc", -math.inf, 2**63 - 1, 0),
    ("lr", 5e-324, 7, 1_700_000_000_123),
    ("loss", 0.1 + 0.2, 7, 1_700_000_000_123),
]


def columns(**fields: object) -> dict[str, object]:
    """A version 2 record's JSON body: ``POINTS``, with ``fields`` replacing columns."""
    body: dict[str, object] = {
        "kind": "metrics.columns",
        "schema_version": 2,
        **BASE,
        "keys": ["loss", "acc", "lr"],
        "key_index": [0, 1, 0, 1, 2, 0],
        "values": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "steps": [0, 0, 1, 1, 2, 2],
        "timestamps": [1, 1, 2, 2, 3, 3],
    }
    body.update(fields)
    return body


def same(a: list[MetricRow], b: list[MetricRow]) -> bool:
    """Row for row equal, NaN equal to NaN and -0.0 told from 0.0."""
    return len(a) == len(b) and all(
        (x.key, x.step, x.timestamp) == (y.key, y.step, y.timestamp)
        and ((math.isnan(x.value) and math.isnan(y.value)) or x.value == y.value)
        and math.copysign(1, x.value) == math.copysign(1, y.value)
        for x, y in zip(a, b, strict=True)
    )


def test_both_versions_of_the_same_points_decode_to_the_same_rows() -> None:
    v1 = MetricsLogged(
        **BASE,
        metrics=tuple(MetricPoint(key=k, value=v, step=s, timestamp=t) for k, v, s, t in POINTS),
    )
    v2 = MetricsColumns(
        **BASE,
        keys=("loss", "acc", "lr"),
        key_index=(0, 1, 0, 1, 2, 0),
        values=tuple(v for _, v, _, _ in POINTS),
        steps=tuple(s for _, _, s, _ in POINTS),
        timestamps=tuple(t for _, _, _, t in POINTS),
    )
    decoded_v1, decoded_v2 = codec.decode(codec.encode(v1)), codec.decode(codec.encode(v2))
    assert isinstance(decoded_v1, MetricsLogged)
    assert isinstance(decoded_v2, MetricsColumns)
    assert decoded_v2.model_dump_json() == v2.model_dump_json()
    assert same(decoded_v1.rows(), [MetricRow(*p) for p in POINTS])
    assert same(decoded_v2.rows(), decoded_v1.rows())
    assert decoded_v1.point_count == decoded_v2.point_count == len(POINTS)
    assert b'"values":[NaN,Infinity,-0.0,-Infinity,5e-324,0.30000000000000004]' in codec.encode(v2)


def test_the_headers_name_the_compact_kind_and_version_2() -> None:
    event = codec.decode(json.dumps(columns()).encode())
    assert dict(codec.headers(event)) == {
        "matih-kind": b"metrics.columns",
        "matih-tenant": b"acme-corp",
        "matih-schema-version": b"2",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"steps": [0, 0, 1]}, "steps has 3 entries; every column needs one per point"),
        ({"values": [1.0]}, "values has 1 entries; every column needs one per point"),
        ({"timestamps": [1] * 7}, "timestamps has 7 entries; every column needs one per point"),
        ({"key_index": [0, 1, 3, 1, 2, 0]}, "key_index 3 names no key; keys has 3"),
        ({"key_index": [0, -1, 0, 1, 2, 0]}, "key_index.1: Input should be greater than or equal"),
        ({"keys": ["loss", "../x", "lr"]}, "keys.1: Value error, key '../x' would resolve"),
        ({"keys": ["loss", "acc", "loss"]}, "keys names 'loss' twice; each key is written once"),
        ({"keys": []}, "keys: Tuple should have at least 1 item"),
        ({"values": [1.0, "high", 3.0, 4.0, 5.0, 6.0]}, "values.1: Input should be a valid number"),
        (
            {"timestamps": [1, 1, 2, 2, 3, 2**63]},
            "timestamps.5: Input should be less than or equal",
        ),
        (
            {"timestamps": [1, 1, -2, 2, 3, 3]},
            "timestamps.2: Input should be greater than or equal",
        ),
        ({"steps": [0, 0, 1, 1, 2, 2**63]}, "steps.5: Input should be less than or equal"),
        ({"schema_version": 1}, "schema_version: Input should be 2"),
        ({"points": []}, "points: Extra inputs are not permitted"),
        (
            {
                "key_index": [0] * 1001,
                "values": [1.0] * 1001,
                "steps": list(range(1001)),
                "timestamps": [1] * 1001,
            },
            "should have at most 1000 items",
        ),
    ],
)
def test_a_bad_column_is_refused_naming_the_field_and_the_rule(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidEventError) as caught:
        codec.decode(json.dumps(columns(**fields)).encode())
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
