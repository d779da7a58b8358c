"""aiokafka log records that alarm without cause, kept out of an operator's terminal."""

from __future__ import annotations

import logging

__all__ = ["CoordinatorStartupFilter", "quiet_harmless_kafka_logs"]

_COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"


class CoordinatorStartupFilter(logging.Filter):
    """Drops aiokafka's ERROR that the group coordinator is not available.

    A broker elects a group's coordinator on the group's first join; until then every
    consumer's first request gets ``GroupCoordinatorNotAvailable``, which aiokafka
    retries on its own. Logged at ERROR, it reads as a failure on every worker start.
    A coordinator that stays away still shows: the worker's lag and status say so.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the harmless coordinator error, True for every other record."""
        return "GroupCoordinatorNotAvailableError" not in record.getMessage()


def quiet_harmless_kafka_logs() -> None:
    """Installs the filters on aiokafka's loggers (once; calling again changes nothing)."""
    coordinator = logging.getLogger(_COORDINATOR_LOGGER)
    if not any(isinstance(f, CoordinatorStartupFilter) for f in coordinator.filters):
        coordinator.addFilter(CoordinatorStartupFilter())
