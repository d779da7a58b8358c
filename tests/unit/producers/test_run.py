"""The SDK's rules: validation at the call, statuses on exit, the spec's call shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ingest import codec
from ingest.errors import InvalidEventError
from ingest.events import MetricsColumns, ParamsLogged, RunEnded, RunStatus, TagsSet
from ingest.ids import new_run_id
from producers import ActiveRun, ProducerSettings, RunConfig, RunMetrics, RunStateError
from producers.artifacts import ArtifactUploader
from producers.delivery.buffer import EventBuffer, RunIdentity, pack


class FakeTracker:
    def __init__(self, buffer: EventBuffer) -> None:
        self.flushes = 0
        self.settings = ProducerSettings(artifact_wait_s=5)
        self.artifacts = ArtifactUploader(buffer.add_event, backoff_s=(0.01, 0.01))

    def flush(self) -> None:
        self.flushes += 1


@pytest.fixture
def buffer() -> EventBuffer:
    return EventBuffer(max_bytes=10**9)


@pytest.fixture
def tracker(buffer: EventBuffer) -> FakeTracker:
    return FakeTracker(buffer)


@pytest.fixture
def run(tracker: FakeTracker, buffer: EventBuffer, tmp_path: Path) -> ActiveRun:
    identity = RunIdentity("acme-corp", new_run_id(), "exp")
    return ActiveRun(
        tracker,  # type: ignore[arg-type]
        identity,
        buffer,
        start_time=1,
        artifact_uri=str(tmp_path / "artifacts" / identity.run_id / "artifacts"),
    )


def events(buffer: EventBuffer) -> list[Any]:
    return [codec.decode(outgoing.entry.value) for outgoing in pack(buffer.drain())]


def test_the_spec_example_logs_three_metrics_per_epoch(run: ActiveRun, buffer: EventBuffer) -> None:
    for epoch in range(3):
        run.log_metrics({"train_loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.7}, step=epoch)
    (event,) = events(buffer)
    assert isinstance(event, MetricsColumns)
    assert [(p.key, p.step) for p in event.rows()][:4] == [
        ("train_loss", 0),
        ("val_loss", 0),
        ("val_accuracy", 0),
        ("train_loss", 1),
    ]
    assert event.point_count == 9


def test_params_are_stringified(run: ActiveRun, buffer: EventBuffer) -> None:
    run.log_params({"learning_rate": 0.01, "max_depth": 6, "n_estimators": 200, "subsample": 0.8})
    (event,) = events(buffer)
    assert isinstance(event, ParamsLogged)
    assert event.params == {
        "learning_rate": "0.01",
        "max_depth": "6",
        "n_estimators": "200",
        "subsample": "0.8",
    }


def test_run_metrics_objects_carry_their_step(run: ActiveRun, buffer: EventBuffer) -> None:
    run.log_metrics(RunMetrics(metrics={"loss": 1.0}, step=7))
    (event,) = events(buffer)
    assert event.steps[0] == 7


def test_log_batch_takes_the_spec_shape(run: ActiveRun, buffer: EventBuffer) -> None:
    run.log_batch(
        metrics=[
            {"key": "loss", "value": 0.342, "step": 1},
            {"key": "loss", "value": 0.298, "step": 2},
        ],
        params=[{"key": "optimizer", "value": "adam"}, {"key": "batch_size", "value": "64"}],
        tags=[{"key": "run_type", "value": "hyperparameter_search"}],
    )
    metrics, params, tags = events(buffer)
    assert [(p.step, p.value) for p in metrics.rows()] == [(1, 0.342), (2, 0.298)]
    assert params.params == {"optimizer": "adam", "batch_size": "64"}
    assert isinstance(tags, TagsSet)
    assert tags.tags == {"run_type": "hyperparameter_search"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.log_metrics({"../loss": 1.0}), "metric key '../loss' would resolve"),
        (
            lambda r: r.log_metrics({"loss": "high"}),
            "metric 'loss' value must be a number, got str",
        ),
        (lambda r: r.log_metrics({"loss": True}), "must be a number, got bool"),
        (lambda r: r.log_metrics({"loss": 1.0}, step=1.5), "step must be an integer"),
        (lambda r: r.log_metrics([("loss", 1.0)]), "metrics must be a mapping"),
        (
            lambda r: r.log_params({"p": "x" * 6001}),
            "param 'p' value is 6001 characters; at most 6000",
        ),
        (lambda r: r.set_tags({"bad*key": "v"}), "tag key 'bad*key' may only contain"),
        (lambda r: r.log_batch(metrics=[{"value": 1.0}]), "metrics[0] needs a 'key'"),
        (
            lambda r: r.log_batch(params=[{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]),
            "params[1]: key 'a' appears twice with different values",
        ),
        (lambda r: r.end("running"), "status 'running' does not end a run"),
    ],
)
def test_invalid_input_raises_at_the_call_and_logs_nothing(
    run: ActiveRun, buffer: EventBuffer, call: Any, message: str
) -> None:
    run.log_metrics({"ok": 1.0})
    buffer.drain()
    with pytest.raises(InvalidEventError) as caught:
        call(run)
    assert message in str(caught.value)
    assert len(buffer) == 0


def test_a_call_with_one_bad_key_logs_none_of_its_keys(run: ActiveRun, buffer: EventBuffer) -> None:
    with pytest.raises(InvalidEventError):
        run.log_metrics({"good": 1.0, "bad key!": 2.0})
    assert len(buffer) == 0


def test_leaving_the_block_normally_finishes_the_run(
    run: ActiveRun, buffer: EventBuffer, tracker: FakeTracker
) -> None:
    with run:
        run.log_metrics({"loss": 1.0})
    ended = events(buffer)[-1]
    assert isinstance(ended, RunEnded)
    assert ended.status is RunStatus.FINISHED
    assert run.status is RunStatus.FINISHED
    assert ended.end_time == run.end_time
    assert tracker.flushes == 1


def test_an_exception_fails_the_run_and_propagates(run: ActiveRun, buffer: EventBuffer) -> None:
    with pytest.raises(RuntimeError, match="diverged"), run:
        raise RuntimeError("diverged")
    assert events(buffer)[-1].status is RunStatus.FAILED


def test_keyboard_interrupt_kills_the_run(run: ActiveRun, buffer: EventBuffer) -> None:
    with pytest.raises(KeyboardInterrupt), run:
        raise KeyboardInterrupt
    assert events(buffer)[-1].status is RunStatus.KILLED


def test_an_ended_run_refuses_further_logging(run: ActiveRun) -> None:
    run.end("killed")
    assert run.status is RunStatus.KILLED
    with pytest.raises(RunStateError, match="has ended"):
        run.log_metrics({"loss": 1.0})
    with run:  # leaving the block after an explicit end changes nothing
        pass
    assert run.status is RunStatus.KILLED


@pytest.mark.parametrize("key", ["matih.tenant_id", "matih.run_id"])
def test_the_sdk_refuses_reserved_tag_keys_at_the_call(
    run: ActiveRun, buffer: EventBuffer, key: str
) -> None:
    with pytest.raises(InvalidEventError, match="reserved"):
        run.set_tags({"ok": "1", key: "globex"})
    with pytest.raises(InvalidEventError, match="reserved"):
        run.log_batch(tags=[{"key": key, "value": "globex"}])
    with pytest.raises(ValidationError, match="reserved"):
        RunConfig(tenant_id="acme-corp", tags={key: "globex"})
    assert events(buffer) == []
