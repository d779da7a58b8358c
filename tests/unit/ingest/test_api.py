"""The gateway's pieces that need no broker: keys, experiment ids, request rules."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr, ValidationError

import ingest.api
from ingest.api.auth import KeyRing
from ingest.api.errors import ApiError
from ingest.api.schemas import BatchLog, MetricsLog, ParamsLog, RunCreate
from ingest.api.settings import ApiSettings
from ingest.api.views import name_of_unknown_id
from ingest.layout import experiment_id_of

KEYS = {SecretStr("k-acme"): "acme-corp", SecretStr("k-globex"): "globex"}


def test_the_public_surface_is_exactly_this() -> None:
    assert sorted(ingest.api.__all__) == ["ApiSettings", "build_server", "create_app"]


def test_a_key_acts_for_its_tenant_only() -> None:
    ring = KeyRing(KEYS, open_mode=False)
    assert ring.tenant_of("k-acme") == "acme-corp"
    assert ring.tenant_of("k-acme ") is None
    assert ring.tenant_of("") is None


def test_settings_never_show_a_key() -> None:
    settings = ApiSettings(api_keys=KEYS)
    assert "k-acme" not in repr(settings)
    assert "k-acme" not in str(settings.model_dump())
    assert settings.open_mode is False


def test_settings_refuse_a_key_for_a_malformed_tenant() -> None:
    with pytest.raises(ValidationError, match="tenant id"):
        ApiSettings(api_keys={SecretStr("k"): "../etc"})


def test_open_mode_needs_no_key_but_a_tenant() -> None:
    ring = KeyRing({}, open_mode=True)
    assert ring.authorize(None, "acme-corp") == "acme-corp"
    with pytest.raises(ApiError) as missing:
        ring.authorize(None, None)
    assert missing.value.status == 422


def test_experiment_ids_are_stable_and_tenant_scoped() -> None:
    spec_id = "550e8400-e29b-41d4-a716-446655440000"
    assert experiment_id_of("acme-corp", spec_id) == spec_id
    assert name_of_unknown_id(uuid.UUID(spec_id.upper())) == spec_id
    named = experiment_id_of("acme-corp", "fraud-detection-v3")
    assert named == experiment_id_of("acme-corp", "fraud-detection-v3")
    assert uuid.UUID(named).version == 5
    assert named != experiment_id_of("globex", "fraud-detection-v3")
    # A UUID-looking name in another spelling is a name, not an id.
    assert experiment_id_of("acme-corp", spec_id.upper()) != spec_id.upper()


def test_params_and_tags_are_stringified_like_mlflow() -> None:
    body = ParamsLog(params={"lr": 0.01, "depth": 6, "early": True, "opt": "adam"})  # type: ignore[dict-item]
    assert body.params == {"lr": "0.01", "depth": "6", "early": "True", "opt": "adam"}
    run = RunCreate(experiment_name="e", tags={"v": 2.1})  # type: ignore[dict-item]
    assert run.tags == {"v": "2.1"}


def test_integral_floats_are_steps_and_strings_are_not_numbers() -> None:
    assert MetricsLog(metrics={"a": 1}, step=15.0).step == 15  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="must be a number"):
        MetricsLog(metrics={"a": "1"})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="must be an integer"):
        MetricsLog(metrics={"a": 1}, step="1")  # type: ignore[arg-type]


def test_a_batch_must_hold_something_and_not_contradict_itself() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        BatchLog()
    with pytest.raises(ValidationError, match="twice with different values"):
        BatchLog(params=[{"key": "p", "value": "1"}, {"key": "p", "value": "2"}])  # type: ignore[list-item]
    same = BatchLog(params=[{"key": "p", "value": "1"}, {"key": "p", "value": "1"}])  # type: ignore[list-item]
    assert len(same.params) == 2


@pytest.mark.parametrize("key", ["matih.tenant_id", "matih.run_id", "matih.anything"])
def test_the_gateway_refuses_reserved_tag_keys(key: str) -> None:
    with pytest.raises(ValidationError, match="reserved"):
        RunCreate(experiment_name="e", tags={key: "globex"})
    with pytest.raises(ValidationError, match="reserved"):
        BatchLog(tags=[{"key": key, "value": "x"}])  # type: ignore[list-item]
    assert BatchLog(tags=[{"key": "matihx", "value": "x"}]).tags  # type: ignore[list-item]
