"""The one place where Kafka's failures become the project's errors.

Every aiokafka call that can fail because the cluster is away runs inside
:func:`kafka_errors` (or :func:`bounded`, which also bounds its wait), the way
httpx maps its transport's exceptions: callers catch ``IngestError`` subclasses
only, each chained ``from`` the aiokafka error it stands for, and every command
can report a failure in one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from aiokafka.errors import KafkaError

from ingest.errors import IngestError, KafkaUnavailableError
from ingest.settings import KafkaSettings

__all__ = ["KAFKA_FAILURES", "bounded", "kafka_errors"]

T = TypeVar("T")

KAFKA_FAILURES: tuple[type[BaseException], ...] = (TimeoutError, KafkaError, OSError)
"""What a Kafka call raises when the cluster is away or refuses: a wait that ran out,
an aiokafka error, or a socket error underneath."""


@contextmanager
def kafka_errors(
    settings: KafkaSettings,
    doing: str,
    error: type[IngestError] = KafkaUnavailableError,
    within_s: float | None = None,
) -> Iterator[None]:
    """Turns a Kafka failure inside the block into ``error``, chained from it.

    Args:
        settings: where Kafka is (named in the message).
        doing: what was being done, for the message ("listing dead letters").
        error: the project error to raise; retriable ones make the worker retry.
        within_s: the bound the block was waited for, if any (named in the message).

    Raises:
        IngestError: ``error``, saying what failed, where, and what to check.
    """
    try:
        yield
    except KAFKA_FAILURES as exc:
        bound = f" within {within_s:g}s" if within_s is not None else ""
        raise error(
            f"Kafka at {settings.bootstrap_servers} did not answer{bound} ({doing}:"
            f" {type(exc).__name__}{f': {exc}' if str(exc) else ''}); is the broker running?"
        ) from exc


async def bounded(
    awaitable: Awaitable[T],
    settings: KafkaSettings,
    doing: str,
    timeout: float | None = None,
    error: type[IngestError] = KafkaUnavailableError,
) -> T:
    """Awaits one Kafka call for at most ``timeout`` s (the request timeout by default).

    Raises:
        IngestError: ``error`` when the call failed or did not finish in time.
    """
    limit = settings.request_timeout_s if timeout is None else timeout
    with kafka_errors(settings, doing, error, limit):
        return await asyncio.wait_for(awaitable, limit)
