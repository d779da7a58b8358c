"""Authentication and tenancy: API keys act for one tenant; other tenants' runs look missing."""

from __future__ import annotations

import httpx
import pytest
from mlflow.tracking import MlflowClient

from ingest.api import ApiSettings
from tests.integration.gateway.conftest import ACME_KEY, GLOBEX_KEY, headers
from tests.integration.gateway.support import serving

pytestmark = pytest.mark.integration

RUNS = "/api/v1/experiments/runs"
CREATE = {"experiment_name": "fraud-detection-v3", "name": "baseline"}
CALLS = [
    ("GET", "/api/v1/experiments", None),
    ("POST", "/api/v1/experiments", {"name": "x"}),
    ("GET", RUNS, None),
    ("POST", RUNS, CREATE),
    ("GET", f"{RUNS}/{'0' * 32}", None),
    ("POST", f"{RUNS}/{'0' * 32}/log-metrics", {"metrics": {"a": 1}, "step": 0}),
    ("POST", f"{RUNS}/{'0' * 32}/log-params", {"params": {"a": "1"}}),
    ("POST", f"{RUNS}/{'0' * 32}/log-batch", {"params": [{"key": "a", "value": "1"}]}),
    ("POST", f"{RUNS}/{'0' * 32}/end?status=finished", None),
    ("GET", f"{RUNS}/{'0' * 32}/metrics/loss/history", None),
]


def call(
    client: httpx.Client, method: str, path: str, body: object, hdrs: dict[str, str]
) -> httpx.Response:
    return client.request(method, path, json=body, headers=hdrs)


def test_every_endpoint_refuses_a_call_without_a_known_key(lone_gateway: httpx.Client) -> None:
    """No key, an unknown key, or another scheme: 401 with WWW-Authenticate, even when the
    body or the tenant header is also wrong."""
    for method, path, body in CALLS:
        for hdrs in (
            headers(key=None),
            headers(key="not-a-key"),
            {"X-Tenant-ID": "acme-corp", "Authorization": f"Basic {ACME_KEY}"},
            {},
        ):
            answer = call(lone_gateway, method, path, {"junk": True}, hdrs)
            assert answer.status_code == 401, (method, path, hdrs, answer.text)
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert answer.json()["error"] == "unauthenticated"
        del body


def test_a_key_acts_only_for_its_own_tenant(lone_gateway: httpx.Client) -> None:
    """acme's key with X-Tenant-ID globex, and globex's with acme: 403 on every endpoint."""
    for method, path, body in CALLS:
        for hdrs in (headers("globex", ACME_KEY), headers("acme-corp", GLOBEX_KEY)):
            answer = call(lone_gateway, method, path, body, hdrs)
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"] == "forbidden"


def test_the_tenant_header_is_required_and_checked(lone_gateway: httpx.Client) -> None:
    """A known key without X-Tenant-ID, or with a malformed one: 422 naming the header."""
    missing = lone_gateway.get(RUNS, headers={"Authorization": f"Bearer {ACME_KEY}"})
    assert missing.status_code == 422
    assert missing.json()["problems"][0]["field"] == "header.X-Tenant-ID"
    bad = lone_gateway.get(RUNS, headers=headers("../acme"))
    assert bad.status_code == 422
    assert bad.json()["problems"][0]["field"] == "header.X-Tenant-ID"
    assert "tenant id" in bad.json()["problems"][0]["rule"]


def test_open_mode_needs_no_key(api_settings: ApiSettings) -> None:
    """In open mode a call without Authorization acts for the tenant it names."""
    settings = api_settings.model_copy(update={"open_mode": True, "api_keys": {}})
    with serving(settings) as client:
        created = client.post(RUNS, json=CREATE, headers=headers("globex", key=None))
        assert created.status_code == 201, created.text
        assert client.get(RUNS, headers={}).status_code == 422  # still needs the tenant


def test_tenants_cannot_see_or_touch_each_others_runs(
    gateway: httpx.Client, api_settings: ApiSettings
) -> None:
    """Both ways: the other tenant's run is a 404 on every run endpoint, is never listed,
    and nothing the other tenant sends reaches it in MLflow."""
    runs = {}
    for tenant, key in (("acme-corp", ACME_KEY), ("globex", GLOBEX_KEY)):
        created = gateway.post(RUNS, json=CREATE, headers=headers(tenant, key))
        assert created.status_code == 201
        run_id = created.json()["run_id"]
        logged = gateway.post(
            f"{RUNS}/{run_id}/log-metrics",
            json={"metrics": {"loss": 1.0 if tenant == "acme-corp" else 2.0}, "step": 0},
            headers=headers(tenant, key),
        )
        assert logged.status_code == 202
        runs[tenant] = (run_id, logged.json()["consistency_token"])

    for me, key, other in (
        ("acme-corp", ACME_KEY, "globex"),
        ("globex", GLOBEX_KEY, "acme-corp"),
    ):
        other_run, token = runs[other]
        mine = headers(me, key)
        for method, path, body in (
            ("GET", f"{RUNS}/{other_run}?after={token}", None),
            ("POST", f"{RUNS}/{other_run}/log-metrics", {"metrics": {"loss": 9.0}, "step": 1}),
            ("POST", f"{RUNS}/{other_run}/log-params", {"params": {"stolen": "1"}}),
            ("POST", f"{RUNS}/{other_run}/log-batch", {"tags": [{"key": "x", "value": "y"}]}),
            ("POST", f"{RUNS}/{other_run}/end?status=killed", None),
            ("GET", f"{RUNS}/{other_run}/metrics/loss/history", None),
        ):
            answer = call(gateway, method, path, body, mine)
            assert answer.status_code == 404, (me, method, path, answer.text)
            assert answer.json()["error"] == "not_found"
        listed = gateway.get(RUNS, params={"after": token}, headers=mine).json()["runs"]
        assert [run["run_id"] for run in listed] == [runs[me][0]]
        names = gateway.get("/api/v1/experiments", headers=mine).json()["experiments"]
        assert [e["name"] for e in names] == ["fraud-detection-v3"]

    client = MlflowClient(tracking_uri=api_settings.mlflow.tracking_uri)
    for tenant, loss in (("acme-corp", 1.0), ("globex", 2.0)):
        experiment = client.get_experiment_by_name(f"{tenant}/fraud-detection-v3")
        (run,) = client.search_runs([experiment.experiment_id])
        assert run.data.tags["matih.run_id"] == runs[tenant][0]
        assert run.data.metrics == {"loss": loss}
        assert run.data.params == {}
        assert run.info.status == "RUNNING"
        assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")] == [
            (0, loss)
        ]
