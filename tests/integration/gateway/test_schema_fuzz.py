"""Schemathesis against the gateway's own OpenAPI document, on real Kafka and MLflow.

Bounded: for each operation, 25 requests that fit the schema and 25 that do not
(and for run-scoped ones, 25 more with generated run ids),
derandomized so a failure reproduces. The run id in paths is one that exists (so
writes get past the 404), the auth headers a valid key's. (Driven through
Hypothesis directly: schemathesis's pytest plugin does not support pytest 9.)
"""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ingest.api import ApiSettings
from tests.integration.gateway.conftest import headers
from tests.integration.gateway.support import serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES_PER_MODE = 25


@pytest.fixture
def fuzz_target(api_settings: ApiSettings) -> Iterator[tuple[schemathesis.BaseSchema, str]]:
    """The gateway's schema, served by a gateway with one run of acme-corp."""
    with serving(api_settings.model_copy(update={"read_wait_s": 0.5})) as client:
        run_id = client.post(
            "/api/v1/experiments/runs", json={"experiment_name": "fuzz"}, headers=headers()
        ).json()["run_id"]
        yield schemathesis.openapi.from_url(str(client.base_url.join("/openapi.json"))), run_id


@pytest.mark.timeout(600)
def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(
    fuzz_target: tuple[schemathesis.BaseSchema, str],
) -> None:
    schema, run_id = fuzz_target
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 11
    calls = 0
    plan = [
        (operation, mode, {"run_id": run_id} if "{run_id}" in operation.path else None)
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    # And the run-scoped operations with generated run ids: any string in the path.
    plan += [
        (operation, GenerationMode.POSITIVE, None)
        for operation in operations
        if "{run_id}" in operation.path
    ]
    for operation, mode, path_parameters in plan:
        strategy = operation.as_strategy(
            generation_mode=mode, path_parameters=path_parameters, headers=headers()
        )

        @hypothesis.given(case=strategy)
        @hypothesis.settings(
            max_examples=EXAMPLES_PER_MODE,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(checks=CHECKS)

        try:
            call()
        except hypothesis.errors.Unsatisfiable:
            # Nothing of this operation can be made invalid once the headers and the
            # run id are fixed (GET /api/v1/experiments): no negative case exists.
            assert mode is GenerationMode.NEGATIVE, operation.label
    assert calls >= len(plan) * 5  # every operation was really exercised
