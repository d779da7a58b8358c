"""Read-your-writes waits through a broker that is still electing the group's
coordinator, instead of failing the read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from ingest import consistency
from ingest.consistency import Position, wait_committed
from ingest.settings import KafkaSettings


class NewBroker:
    """Answers like a broker just started: no coordinator for the first two asks."""

    def __init__(self) -> None:
        self.asks = 0

    async def list_consumer_group_offsets(self, group: str, partitions: Any) -> Any:
        self.asks += 1
        if self.asks <= 2:
            raise GroupCoordinatorNotAvailableError
        return {TopicPartition("events", 0): OffsetAndMetadata(5, "")}


async def test_a_coordinator_not_yet_elected_means_not_committed_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = NewBroker()

    @asynccontextmanager
    async def admin_client(settings: KafkaSettings) -> AsyncIterator[NewBroker]:
        yield broker

    monkeypatch.setattr(consistency, "admin_client", admin_client)
    assert await wait_committed(KafkaSettings(), [Position("events", 0, 4)], timeout=5)
    assert broker.asks == 3
