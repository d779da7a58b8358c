"""The benchmark's topics and consumer groups: one of each per measurement, and waiting
until a group has committed the end of every partition."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from ingest.consistency import Position, wait_committed
from ingest.errors import KafkaUnavailableError
from ingest.kafka.admin import ensure_topics
from ingest.settings import KafkaSettings
from tests.integration.support import end_offsets

_RETRY_S = 0.2
_CHECK_S = 5.0


def broker_port(bootstrap: str) -> int:
    """The port of the first bootstrap server."""
    return int(bootstrap.split(",", maxsplit=1)[0].rpartition(":")[2])


def fresh_topic(bootstrap: str, label: str) -> KafkaSettings:
    """A new topic (created now, with the default partition count) and a group for it."""
    name = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic=name, consumer_group=f"{name}-w")
    asyncio.run(ensure_topics(kafka))
    return kafka


def fresh_group(kafka: KafkaSettings) -> KafkaSettings:
    """The same topic read by a consumer group nobody has used yet."""
    group = f"{kafka.topic}-w-{uuid.uuid4().hex[:8]}"
    return kafka.model_copy(update={"consumer_group": group})


async def _end_positions(kafka: KafkaSettings) -> list[Position]:
    ends = await end_offsets(kafka)
    return [Position(tp.topic, tp.partition, end - 1) for tp, end in ends.items() if end > 0]


def end_positions(kafka: KafkaSettings) -> list[Position]:
    """The last record of every non-empty partition of the topic, now."""
    return asyncio.run(_end_positions(kafka))


def wait_drained(
    kafka: KafkaSettings, timeout: float, check: Callable[[], None] | None = None
) -> float:
    """Waits until the group committed everything the topic holds now.

    Args:
        kafka: the topic and the group.
        timeout: the longest wait, in seconds.
        check: called every few seconds while waiting; raises to give up (a worker died).

    Returns:
        The monotonic time it saw the last commit (polled every 0.1 s).

    Raises:
        TimeoutError: the group did not get there within ``timeout`` seconds.
    """
    positions = end_positions(kafka)
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if check is not None:
            check()
        try:
            if asyncio.run(wait_committed(kafka, positions, min(left, _CHECK_S))):
                return time.monotonic()
        except KafkaUnavailableError:
            # A group's coordinator is unknown until the group first shows up (and on a
            # new broker until the offsets topic exists): ask again.
            time.sleep(_RETRY_S)
    raise TimeoutError(f"group {kafka.consumer_group} did not drain {kafka.topic} in {timeout}s")
