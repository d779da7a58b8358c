"""Coalescing a batch into the fewest writes MLflow's limits allow."""

from __future__ import annotations

from consumers.batch import RecordRef, coalesce
from ingest.events import (
    ArtifactLogged,
    MetricPoint,
    MetricRow,
    MetricsColumns,
    MetricsLogged,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
    TagsSet,
)
from ingest.ids import new_run_id
from ingest.layout import recorded_artifacts

RUN = new_run_id()
BASE = {"tenant_id": "acme-corp", "run_id": RUN, "experiment_name": "exp"}


def metrics(*steps: int, key: str = "loss") -> MetricsLogged:
    return MetricsLogged(
        **BASE,
        metrics=tuple(MetricPoint(key=key, value=s / 10, step=s, timestamp=s) for s in steps),
    )


def test_events_of_one_run_fold_into_one_set_of_writes() -> None:
    created = RunCreated(**BASE, start_time=5)
    ended = RunEnded(**BASE, status=RunStatus.FINISHED, end_time=9)
    (writes,) = coalesce(
        [
            (created, None),
            (metrics(0, 1), None),
            (ParamsLogged(**BASE, params={"a": "1"}), None),
            (TagsSet(**BASE, tags={"t": "1"}), None),
            (TagsSet(**BASE, tags={"t": "2"}), None),
            (metrics(2), None),
            (ended, None),
        ]
    )
    assert writes.created == created
    assert [p.step for p in writes.metrics] == [0, 1, 2]
    assert writes.params == {"a": "1"}
    assert writes.tags == {"t": "2"}
    assert writes.ended == ended
    assert writes.experiment_name == "exp"


def test_the_workers_mapping_tags_are_written_last_over_any_producers() -> None:
    """Should a ``matih.`` tag get past the contract (built here without its checks),
    the tags the sink writes still name this run and tenant: it cannot make a second
    MLflow run of one producer run, nor move the run to another tenant."""
    forged = {"matih.run_id": new_run_id(), "matih.tenant_id": "globex", "team": "ml"}
    created = RunCreated.model_construct(**BASE, start_time=5, tags=forged, run_name=None)
    tagged = TagsSet.model_construct(**BASE, tags=forged)
    for event in (created, tagged):
        (writes,) = coalesce([(event, None)])
        assert writes.run_tags() == {
            "team": "ml",
            "matih.run_id": RUN,
            "matih.tenant_id": "acme-corp",
        }
    (untagged,) = coalesce([(metrics(0), None)])
    assert untagged.run_tags() == {}


def test_the_same_points_in_both_versions_are_written_once() -> None:
    """A run whose points arrive as version 1 (the gateway, an old SDK) and again as
    version 2 (a redelivery from a newer SDK) writes each point once, in order."""
    compact = MetricsColumns(
        **BASE,
        keys=("loss", "acc"),
        key_index=(0, 1, 0),
        values=(0.1, 0.9, 0.2),
        steps=(1, 1, 2),
        timestamps=(1, 1, 2),
    )
    (writes,) = coalesce([(metrics(0, 1), None), (compact, None), (metrics(2, key="acc"), None)])
    assert writes.metrics == [
        MetricRow("loss", 0.0, 0, 0),
        MetricRow("loss", 0.1, 1, 1),
        MetricRow("acc", 0.9, 1, 1),
        MetricRow("loss", 0.2, 2, 2),
        MetricRow("acc", 0.2, 2, 2),
    ]


def test_runs_and_tenants_stay_apart_in_first_seen_order() -> None:
    other_run = {**BASE, "run_id": new_run_id()}
    other_tenant = {**BASE, "tenant_id": "globex"}
    runs = coalesce(
        [
            (ParamsLogged(**other_run, params={"a": "1"}), None),
            (ParamsLogged(**BASE, params={"a": "2"}), None),
            (ParamsLogged(**other_tenant, params={"a": "3"}), None),
        ]
    )
    assert [(w.tenant_id, w.run_id, w.params["a"]) for w in runs] == [
        ("acme-corp", other_run["run_id"], "1"),
        ("acme-corp", RUN, "2"),
        ("globex", RUN, "3"),
    ]


def test_chunks_hold_at_most_100_params_100_tags_and_1000_entities_per_call() -> None:
    events = [
        (metrics(*range(start, min(start + 1000, 2500))), None) for start in range(0, 2500, 1000)
    ]
    events.append((ParamsLogged(**BASE, params={f"p{i}": "v" for i in range(250)}), None))
    events.append((TagsSet(**BASE, tags={f"t{i}": "v" for i in range(120)}), None))
    (writes,) = coalesce(events)
    chunks = writes.chunks()
    assert [(len(m), len(p), len(t)) for m, p, t in chunks] == [
        (800, 100, 100),
        (880, 100, 20),
        (820, 50, 0),
    ]
    assert sorted(p.step for m, _, _ in chunks for p in m) == list(range(2500))


def test_a_redelivered_point_is_written_once() -> None:
    (writes,) = coalesce([(metrics(0, 1), None), (metrics(1, 2), None)])
    assert [p.step for p in writes.metrics] == [0, 1, 2]


def test_a_param_relogged_with_another_value_is_rejected_alone() -> None:
    source = RecordRef("t", 0, 42)
    second = ParamsLogged(**BASE, params={"lr": "0.1", "depth": "6"})
    (writes,) = coalesce([(ParamsLogged(**BASE, params={"lr": "0.01"}), None), (second, source)])
    assert writes.params == {"lr": "0.01", "depth": "6"}
    (rejection,) = writes.rejections
    assert rejection.event == second
    assert rejection.source == source
    assert "param 'lr' was already logged with value '0.01'" in rejection.reason


def test_the_same_param_value_twice_is_not_a_conflict() -> None:
    event = ParamsLogged(**BASE, params={"lr": "0.01"})
    (writes,) = coalesce([(event, None), (event, None)])
    assert writes.params == {"lr": "0.01"}
    assert writes.rejections == []


def test_a_run_ends_once_with_the_first_end_seen() -> None:
    first = RunEnded(**BASE, status=RunStatus.FAILED, end_time=5)
    (writes,) = coalesce(
        [(first, None), (RunEnded(**BASE, status=RunStatus.FINISHED, end_time=9), None)]
    )
    assert writes.ended == first


def test_the_experiment_comes_from_any_event_that_names_it() -> None:
    anonymous = {**BASE, "experiment_name": None}
    (writes,) = coalesce([(ParamsLogged(**anonymous, params={"a": "1"}), None), (metrics(1), None)])
    assert writes.experiment_name == "exp"


def test_metrics_alone_go_1000_per_call() -> None:
    (writes,) = coalesce(
        [(metrics(*range(s, min(s + 1000, 2500))), None) for s in range(0, 2500, 1000)]
    )
    assert [len(m) for m, _, _ in writes.chunks()] == [1000, 1000, 500]


def test_an_artifacts_claim_check_becomes_a_tag_of_its_run() -> None:
    """The bytes are in the artifact store; the run records path, size and hash."""
    logged = [
        ArtifactLogged(**BASE, path="model/weights.bin", size=7, sha256="a" * 64),
        ArtifactLogged(**BASE, path="report.txt", size=0, sha256="b" * 64),
    ]
    (writes,) = coalesce([(event, None) for event in logged])
    assert recorded_artifacts(writes.tags) == {
        "model/weights.bin": (7, "a" * 64),
        "report.txt": (0, "b" * 64),
    }
