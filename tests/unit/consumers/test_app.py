"""The worker's wiring: what it asks FastStream for."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from consumers.app import build_worker
from consumers.settings import ConsumerSettings
from consumers.sink.memory import ListSink


def test_a_group_instance_id_from_the_environment_makes_the_membership_static(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MATIH_CONSUMER_GROUP_INSTANCE_ID reaches the subscriber, so a worker restarting
    within the session timeout keeps its partitions without a rebalance."""
    asked: list[dict[str, Any]] = []
    subscribe = KafkaBroker.subscriber

    def spy(self: KafkaBroker, *topics: str, **options: Any) -> Any:
        asked.append(options)
        return subscribe(self, *topics, **options)

    monkeypatch.setattr(KafkaBroker, "subscriber", spy)
    monkeypatch.setenv("MATIH_CONSUMER_GROUP_INSTANCE_ID", "worker-0")
    build_worker(ConsumerSettings(), ListSink())
    monkeypatch.delenv("MATIH_CONSUMER_GROUP_INSTANCE_ID")
    build_worker(ConsumerSettings(), ListSink())
    assert [options["group_instance_id"] for options in asked] == ["worker-0", None]
