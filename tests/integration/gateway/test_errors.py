"""Bad input is a 422 that names the field and the rule; unknown runs are 404; never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.gateway.conftest import headers

pytestmark = pytest.mark.integration

RUNS = "/api/v1/experiments/runs"


@pytest.fixture
def run_id(lone_gateway: httpx.Client) -> str:
    created = lone_gateway.post(
        RUNS, json={"experiment_name": "errors", "name": "r"}, headers=headers()
    )
    assert created.status_code == 201, created.text
    run_id: str = created.json()["run_id"]
    return run_id


def problem(answer: httpx.Response) -> tuple[str, str]:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid_request"
    first = body["problems"][0]
    return first["field"], first["rule"]


def test_an_unknown_end_status_is_refused(lone_gateway: httpx.Client, run_id: str) -> None:
    for status in ("done", "running", "FINISHED", ""):
        field, rule = problem(
            lone_gateway.post(f"{RUNS}/{run_id}/end", params={"status": status}, headers=headers())
        )
        assert field == "query.status"
        assert "finished" in rule


@pytest.mark.parametrize(
    ("path", "body", "field", "rule"),
    [
        (
            "log-metrics",
            {"metrics": {"val_loss": "high"}, "step": 1},
            "body.metrics.val_loss",
            "number",
        ),
        (
            "log-metrics",
            {"metrics": {"val_loss": "0.3"}, "step": 1},
            "body.metrics.val_loss",
            "number",
        ),
        ("log-metrics", {"metrics": {"val_loss": True}}, "body.metrics.val_loss", "number"),
        ("log-metrics", {"metrics": {"val_loss": None}}, "body.metrics.val_loss", "number"),
        ("log-metrics", {"metrics": {"a": 1}, "step": "15"}, "body.step", "integer"),
        ("log-metrics", {"metrics": {"a": 1}, "step": 1.5}, "body.step", "integer"),
        ("log-metrics", {"metrics": {"a": 1}, "step": 2**70}, "body.step", "less than or equal"),
        ("log-metrics", {"metrics": {"a": 1}, "timestamp": -1}, "body.timestamp", "greater than"),
        ("log-metrics", {"metrics": {}}, "body.metrics", "at least 1"),
        ("log-metrics", {"metrics": {"a": 1}, "extra": 1}, "body.extra", "not permitted"),
        ("log-metrics", {"metrics": {"a/../b": 1}}, "body.metrics.a/../b.[key]", "no '..'"),
        ("log-metrics", {"metrics": {"/lead": 1}}, "body.metrics./lead.[key]", "leading '/'"),
        ("log-metrics", {"metrics": {"a$b": 1}}, "body.metrics.a$b.[key]", "alphanumerics"),
        (
            "log-metrics",
            {"metrics": {"k" * 251: 1}},
            f"body.metrics.{'k' * 251}.[key]",
            "at most 250",
        ),
        (
            "log-metrics",
            {"metrics": {f"m{i}": 1.0 for i in range(1001)}},
            "body.metrics",
            "at most 1000",
        ),
        ("log-params", {"params": {"p": "x" * 6001}}, "body.params.p", "at most 6000"),
        ("log-params", {"params": {"p": None}}, "body.params.p", "string, number or boolean"),
        ("log-params", {"params": {"p": [1]}}, "body.params.p", "string, number or boolean"),
        (
            "log-params",
            {"params": {"bad key!": "1"}},
            "body.params.bad key!.[key]",
            "alphanumerics",
        ),
        (
            "log-params",
            {"params": {f"p{i}": "1" for i in range(101)}},
            "body.params",
            "at most 100",
        ),
        (
            "log-batch",
            {"metrics": [{"key": "loss", "value": 1, "step": i} for i in range(1001)]},
            "body.metrics",
            "at most 1000",
        ),
        (
            "log-batch",
            {"metrics": [{"key": "loss", "value": "x"}]},
            "body.metrics.0.value",
            "number",
        ),
        (
            "log-batch",
            {"params": [{"key": "p", "value": "y" * 6001}]},
            "body.params.0.value",
            "6000",
        ),
        (
            "log-batch",
            {"tags": [{"key": "matih.run_id", "value": "x"}]},
            "body.tags.0.key",
            "reserved",
        ),
        ("log-batch", {}, "body", "at least one"),
        (
            "log-batch",
            {"params": [{"key": "p", "value": "1"}, {"key": "p", "value": "2"}]},
            "body",
            "twice",
        ),
    ],
)
def test_a_bad_log_body_names_the_field_and_rule(
    *, lone_gateway: httpx.Client, run_id: str, path: str, body: object, field: str, rule: str
) -> None:
    got_field, got_rule = problem(
        lone_gateway.post(f"{RUNS}/{run_id}/{path}", json=body, headers=headers())
    )
    assert got_field == field
    assert rule in got_rule


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"name": "r"}, "body", "exactly one of experiment_id and experiment_name"),
        (
            {"experiment_id": "550e8400-e29b-41d4-a716-446655440000", "experiment_name": "x"},
            "body",
            "exactly one",
        ),
        ({"experiment_id": "not-a-uuid"}, "body.experiment_id", "UUID"),
        ({"experiment_name": ""}, "body.experiment_name", "at least 1"),
        ({"experiment_name": "e", "tags": {"k": {"a": 1}}}, "body.tags.k", "string, number"),
        (
            {"experiment_name": "e", "tags": {"matih.tenant_id": "x"}},
            "body.tags.matih.tenant_id.[key]",
            "reserved",
        ),
        ({"experiment_name": "e", "name": "n" * 251}, "body.name", "at most 250"),
    ],
)
def test_a_bad_run_body_names_the_field_and_rule(
    lone_gateway: httpx.Client, body: object, field: str, rule: str
) -> None:
    got_field, got_rule = problem(lone_gateway.post(RUNS, json=body, headers=headers()))
    assert got_field == field
    assert rule in got_rule


def test_malformed_bodies_are_422_never_500(lone_gateway: httpx.Client, run_id: str) -> None:
    """Broken JSON, a JSON array, non-UTF-8 bytes, another content type, NaN as a string."""
    url = f"{RUNS}/{run_id}/log-metrics"
    json_type = {**headers(), "Content-Type": "application/json"}
    for content, hdrs in (
        (b'{"metrics": {"a": 1}', json_type),
        (b'[{"metrics": {"a": 1}}]', json_type),
        (b"\xff\xfe\x00garbage", json_type),
        (b"K\xe9\x07\xf1g\xfccL\x00\xa0", json_type),
        (b"metrics=a", {**headers(), "Content-Type": "application/x-www-form-urlencoded"}),
        (b"", json_type),
        (b"null", json_type),
    ):
        answer = lone_gateway.post(url, content=content, headers=hdrs)
        assert answer.status_code == 422, (content, answer.text)
        assert answer.json()["problems"], content


def test_a_body_over_the_limit_is_413(lone_gateway: httpx.Client, run_id: str) -> None:
    """Declared or chunked: the gateway refuses before reading more than the bound."""
    big = b'{"params": {"p": "' + b"x" * (300 * 1024) + b'"}}'
    url = f"{RUNS}/{run_id}/log-params"
    declared = lone_gateway.post(
        url, content=big, headers={**headers(), "Content-Type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["error"] == "body_too_large"

    def chunks() -> object:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    chunked = lone_gateway.post(
        url, content=chunks(), headers={**headers(), "Content-Type": "application/json"}
    )
    assert chunked.status_code == 413


def test_nan_and_infinity_are_metric_values(lone_gateway: httpx.Client, run_id: str) -> None:
    """MLflow stores NaN and infinities; the JSON extension literals are accepted."""
    answer = lone_gateway.post(
        f"{RUNS}/{run_id}/log-metrics",
        content=b'{"metrics": {"a": NaN, "b": Infinity, "c": -Infinity}, "step": 1}',
        headers={**headers(), "Content-Type": "application/json"},
    )
    assert answer.status_code == 202, answer.text


def test_unknown_runs_are_404_on_every_endpoint(lone_gateway: httpx.Client) -> None:
    """A well-formed id nobody created, and a malformed one: 404, same body."""
    for run_id in ("0" * 32, "does-not-exist", "A" * 32, "x'` or 1=1 \\", "é☃"):
        for method, path, body in (
            ("GET", "", None),
            ("POST", "/log-metrics", {"metrics": {"a": 1}}),
            ("POST", "/log-params", {"params": {"a": "1"}}),
            ("POST", "/log-batch", {"params": [{"key": "a", "value": "1"}]}),
            ("POST", "/end", None),
            ("GET", "/metrics/loss/history", None),
        ):
            answer = lone_gateway.request(
                method, f"{RUNS}/{run_id}{path}", json=body, headers=headers()
            )
            assert answer.status_code == 404, (run_id, path, answer.text)
            assert answer.json() == {
                "error": "not_found",
                "message": f"run {run_id!r} not found",
                "problems": [],
            }
    unknown_route = lone_gateway.get("/api/v1/nothing", headers=headers())
    assert unknown_route.status_code == 404
    assert unknown_route.json()["error"] == "not_found"


def test_ending_a_run_twice_is_a_conflict(lone_gateway: httpx.Client, run_id: str) -> None:
    first = lone_gateway.post(
        f"{RUNS}/{run_id}/end", params={"status": "killed"}, headers=headers()
    )
    assert first.status_code == 200
    assert first.json()["status"] == "killed"
    again = lone_gateway.post(f"{RUNS}/{run_id}/end", headers=headers())
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"


def test_a_bad_consistency_token_is_refused(lone_gateway: httpx.Client) -> None:
    for token in ("nonsense", "other.topic:0:5", "x:y:z"):
        field, _ = problem(lone_gateway.get(RUNS, params={"after": token}, headers=headers()))
        assert field == "query.after"


def test_bad_list_queries_name_the_parameter(lone_gateway: httpx.Client) -> None:
    for params, field in (
        ({"status": "done"}, "query.status"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 1001}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"experiment_id": "nope"}, "query.experiment_id"),
    ):
        got_field, _ = problem(lone_gateway.get(RUNS, params=params, headers=headers()))
        assert got_field == field
