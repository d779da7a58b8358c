"""A worker's start logs no harmless aiokafka ERROR; every other record still shows."""

from __future__ import annotations

import logging

import pytest

from ingest.kafka.logs import quiet_harmless_kafka_logs


def test_the_coordinator_not_available_error_is_dropped_and_others_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_harmless_kafka_logs()
    quiet_harmless_kafka_logs()  # installing twice is harmless
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    with caplog.at_level(logging.INFO):
        coordinator.error(
            "Group Coordinator Request failed: %s",
            "[Error 15] GroupCoordinatorNotAvailableError",
        )
        coordinator.error("OffsetCommit failed for group g: NotCoordinatorForGroupError")
    assert [r.getMessage() for r in caplog.records] == [
        "OffsetCommit failed for group g: NotCoordinatorForGroupError"
    ]
