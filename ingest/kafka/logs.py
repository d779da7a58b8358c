"""aiokafka log records kept out of logs: those that alarm without cause, and those
that would carry a credential."""

from __future__ import annotations

import logging

__all__ = [
    "CoordinatorStartupFilter",
    "SaslSecretFilter",
    "keep_credentials_out_of_logs",
    "quiet_harmless_kafka_logs",
]

_COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
_CONNECTION_LOGGER = "aiokafka.conn"


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


class SaslSecretFilter(logging.Filter):
    """Drops aiokafka's DEBUG records of SASL authentication requests.

    aiokafka logs every request it sends at DEBUG, the SASL handshake's bytes included:
    with the PLAIN mechanism those are the password in clear (SCRAM's carry a proof,
    not the password, but are no one's business either).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a SASL authentication request, True for every other record."""
        return "SaslAuthenticateRequest" not in record.getMessage()


def keep_credentials_out_of_logs() -> None:
    """Installs :class:`SaslSecretFilter` on aiokafka's connection logger (once)."""
    connection = logging.getLogger(_CONNECTION_LOGGER)
    if not any(isinstance(f, SaslSecretFilter) for f in connection.filters):
        connection.addFilter(SaslSecretFilter())
