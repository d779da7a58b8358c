"""The key rules agree with MLflow's own validator, case by case."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric_name

from ingest.codec import decode
from ingest.errors import InvalidEventError
from ingest.events import TagsSet
from ingest.ids import new_run_id
from ingest.validation import check_key, check_metric_value, check_step, check_tag_key

KEYS = [
    "loss",
    "val/loss",
    "a b",
    "a:b",
    "a-b_c.d",
    "ünïcode",
    "a..b",
    "..a",
    "/a",
    "a/",
    "a//b",
    "./a",
    "a/./b",
    ".",
    "a\\b",
    "a;b",
    "a*b",
    "tab\there",
    "x" * 250,
]


@pytest.mark.parametrize("key", KEYS)
def test_check_key_accepts_exactly_what_mlflow_accepts(key: str) -> None:
    try:
        _validate_metric_name(key)
        mlflow_ok = True
    except MlflowException:
        mlflow_ok = False
    try:
        check_key(key)
        ours = True
    except ValueError:
        ours = False
    assert ours == mlflow_ok


def test_keys_are_at_most_250_characters() -> None:
    with pytest.raises(ValueError, match="at most 250"):
        check_key("x" * 251)


@pytest.mark.parametrize("value", [True, "1.0", None, b"1", object()])
def test_metric_values_must_be_numbers(value: object) -> None:
    with pytest.raises(ValueError, match="must be a number"):
        check_metric_value(value)


def test_numeric_types_convert_to_float() -> None:
    assert check_metric_value(3) == 3.0
    assert check_metric_value(Decimal("0.5")) == 0.5
    assert check_metric_value(Fraction(1, 4)) == 0.25


@pytest.mark.parametrize("step", [1.5, "3", True, 2**63])
def test_steps_must_be_64_bit_integers(step: object) -> None:
    with pytest.raises(ValueError, match="step"):
        check_step(step)


@pytest.mark.parametrize("key", ["matih.tenant_id", "matih.run_id", "matih."])
def test_the_contract_reserves_the_matih_tag_prefix(key: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        check_tag_key(key)
    assert check_tag_key("matih_tenant") == "matih_tenant"


def test_an_event_with_a_reserved_tag_is_not_an_event() -> None:
    record = TagsSet(
        tenant_id="acme-corp", run_id=new_run_id(), experiment_name="e", tags={"k": "v"}
    ).model_dump_json()
    with pytest.raises(InvalidEventError, match="reserved"):
        decode(record.replace('"k"', '"matih.tenant_id"').encode())
