"""Read-your-writes: a position in the events topic, and waiting for the workers to pass it.

A producer learns from Kafka's acknowledgement where its event landed; a reader
that waits until the worker group has committed past that position sees the write
in MLflow (workers commit only after MLflow accepted the write).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    NotCoordinatorForGroupError,
)
from aiokafka.structs import TopicPartition

from ingest.errors import InvalidEventError
from ingest.kafka.admin import admin_client
from ingest.settings import KafkaSettings

_POLL_S = 0.1
_COORDINATOR_NOT_READY = (
    GroupCoordinatorNotAvailableError,
    CoordinatorLoadInProgressError,
    NotCoordinatorForGroupError,
)
"""Answers of a broker that has not yet elected or loaded the group's coordinator: the
group has committed nothing visible yet, so the wait goes on."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where one record landed: topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    def token(self) -> str:
        """The position as an opaque string, ``topic:partition:offset``."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, token: str) -> Position:
        """Reads a position back from ``token()``.

        Raises:
            InvalidEventError: ``token`` is not of the form ``topic:partition:offset``.
        """
        topic, _, rest = token.rpartition(":")
        topic, _, partition = topic.rpartition(":")
        if not topic or not partition.isdigit() or not rest.isdigit():
            raise InvalidEventError(f"consistency token {token!r} is not topic:partition:offset")
        return cls(topic, int(partition), int(rest))


async def wait_committed(
    settings: KafkaSettings, positions: Iterable[Position], timeout: float
) -> bool:
    """Waits until the worker group committed past every position; False on timeout.

    Raises:
        KafkaUnavailableError: Kafka did not answer.
    """
    wanted = {TopicPartition(p.topic, p.partition): p.offset for p in positions}
    if not wanted:
        return True
    deadline = time.monotonic() + timeout
    async with admin_client(settings) as admin:
        while True:
            try:
                committed = await asyncio.wait_for(
                    admin.list_consumer_group_offsets(
                        settings.consumer_group, partitions=list(wanted)
                    ),
                    settings.request_timeout_s,
                )
            except _COORDINATOR_NOT_READY:
                committed = {}  # a new broker still electing the group's coordinator
            if all(
                tp in committed and committed[tp].offset > offset for tp, offset in wanted.items()
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)
