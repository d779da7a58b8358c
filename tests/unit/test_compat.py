"""The private uses of each dependency, one compat module each: the installed versions are
the ones checked, and every use still does what the project relies on."""

from __future__ import annotations

import inspect
import re
import signal
import threading
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import mlflow.sklearn
import pytest
import uvicorn
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.admin import DescribeGroupsResponse_v0
from aiokafka.structs import TopicPartition
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.client import TrackingServiceClient
from mlflow.utils.autologging_utils.safety import _AutologgingSessionManager
from packaging.specifiers import SpecifierSet

from ingest.api import compat as uvicorn_compat
from ingest.api.compat import EmbeddedServer
from ingest.kafka import compat as aiokafka_compat
from ingest.kafka import kafka_producer, stop
from ingest.settings import KafkaSettings
from ingest.tracking import compat as mlflow_compat


@pytest.mark.parametrize(
    ("distribution", "module"),
    [
        ("aiokafka", aiokafka_compat),
        ("mlflow", mlflow_compat),
        ("uvicorn", uvicorn_compat),
    ],
)
def test_the_installed_version_is_one_the_compat_module_was_checked_against(
    distribution: str, module: ModuleType
) -> None:
    checked = SpecifierSet(",".join(module.CHECKED_VERSIONS))
    assert version(distribution) in checked, (
        f"{distribution} {version(distribution)} is not in {checked}: re-check every use in"
        f" {module.__name__} against it, then widen CHECKED_VERSIONS"
    )


async def test_fail_pending_fails_every_record_not_sent_yet() -> None:
    producer = kafka_producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    accumulator = producer._message_accumulator  # noqa: SLF001  (queues as send() would)
    pending = await accumulator.add_message(TopicPartition("t", 0), b"k", b"v", timeout=1)
    aiokafka_compat.fail_pending(producer, "aborted")
    with pytest.raises(KafkaConnectionError, match="aborted"):
        await pending
    await stop(producer, 1.0)


def test_group_owners_decodes_the_members_assignments() -> None:
    assignment = ConsumerProtocolMemberAssignment(
        0,
        [("events", [0, 2])],
        b"",
    ).encode()
    response = DescribeGroupsResponse_v0(
        [
            (0, "g", "Stable", "consumer", "range", [("m-1", "c", "h", b"", assignment)]),
            (0, "g", "Stable", "consumer", "range", [("m-2", "c", "h", b"", b"")]),
        ]
    )
    state, owners = aiokafka_compat.group_owners([response])
    assert state == "Stable"
    assert owners == {TopicPartition("events", 0): "m-1", TopicPartition("events", 2): "m-1"}


def test_the_tracking_store_and_random_run_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the quickest store to open
    store = mlflow_compat.tracking_store(MlflowClient(tracking_uri=tmp_path.as_uri()))
    assert callable(store.log_batch)
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", mlflow_compat.random_run_name())


def test_a_primed_artifact_repository_is_the_one_mlflows_client_uses(tmp_path: Path) -> None:
    repository = LocalArtifactRepository(str(tmp_path))
    run_id = "f" * 32
    mlflow_compat.prime_artifact_repository(run_id, repository)
    client = TrackingServiceClient("sqlite:///" + str(tmp_path / "unused.db"))
    assert client._get_artifact_repo(run_id) is repository  # noqa: SLF001 (what it primes)


def test_the_autologging_session_is_seen_in_every_thread() -> None:
    assert mlflow_compat.autologging_integration() is None
    with _AutologgingSessionManager.start_session("sklearn"):  # type: ignore[no-untyped-call]
        seen: list[str | None] = []
        thread = threading.Thread(
            target=lambda: seen.append(mlflow_compat.autologging_integration())
        )
        thread.start()
        thread.join()
        assert seen == ["sklearn"]
    assert mlflow_compat.autologging_integration() is None


def test_sklearns_autologging_steps_over_the_model_refusal() -> None:
    """It catches its own pickling error around log_model, and goes on to the metrics."""
    source = inspect.getsource(mlflow.sklearn._autolog)  # noqa: SLF001 (what compat relies on)
    assert (
        "except _SklearnCustomModelPicklingError as e:\n                _logger.warning(str(e))"
        in (source)
    )
    refusal = mlflow_compat.model_refusal_sklearn_autolog_survives("no models here")
    assert isinstance(refusal, mlflow.sklearn._SklearnCustomModelPicklingError)  # noqa: SLF001
    assert isinstance(refusal, MlflowException)
    assert str(refusal) == refusal.message == "no models here"
    assert refusal.error_code == "FEATURE_DISABLED"


def test_an_embedded_server_leaves_the_signal_handlers_alone() -> None:
    assert "capture_signals" in inspect.getsource(uvicorn.Server.serve)
    before = signal.getsignal(signal.SIGINT)
    server = EmbeddedServer(uvicorn.Config(app=None))
    with server.capture_signals():
        assert signal.getsignal(signal.SIGINT) is before
