"""The one place that builds aiokafka clients from ``KafkaSettings``, and starts and
stops them without hanging on a broker that is gone.

Defaults are the project's: consumers never auto-commit and begin at the earliest
record; producers are idempotent with ``acks=all``; every request is bounded by
``request_timeout_s``. Callers override what their role needs.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from ingest.errors import ConfigurationError, KafkaUnavailableError
from ingest.kafka.compat import probe_connection
from ingest.kafka.errors import KAFKA_FAILURES, bounded
from ingest.kafka.logs import keep_credentials_out_of_logs
from ingest.settings import KafkaSettings, SecurityProtocol

__all__ = [
    "KafkaClient",
    "kafka_admin",
    "kafka_consumer",
    "kafka_producer",
    "security_options",
    "start",
    "stop",
]

logger = logging.getLogger(__name__)

KafkaClient: TypeAlias = AIOKafkaProducer | AIOKafkaConsumer | AIOKafkaAdminClient
C = TypeVar("C", AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient)


def _common(settings: KafkaSettings) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "request_timeout_ms": int(settings.request_timeout_s * 1000),
        **security_options(settings),
    }


def security_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka's connection options for the settings' protocol, identity and CA: every
    client of the product (and FastStream's, which takes the same) connects this way."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol.value}
    if settings.tls:
        cafile = None if settings.ca_file is None else str(settings.ca_file)
        options["ssl_context"] = create_ssl_context(cafile=cafile)
    if settings.sasl:
        assert settings.password is not None  # the settings refuse SASL without one
        keep_credentials_out_of_logs()
        options["sasl_mechanism"] = settings.sasl_mechanism.value
        options["sasl_plain_username"] = settings.username
        options["sasl_plain_password"] = settings.password.get_secret_value()
    return options


def kafka_producer(settings: KafkaSettings, **options: Any) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer; ``options`` are aiokafka's, and win."""
    return AIOKafkaProducer(
        **{**_common(settings), "acks": "all", "enable_idempotence": True, **options}
    )


def kafka_consumer(
    settings: KafkaSettings, group_id: str | None = None, **options: Any
) -> AIOKafkaConsumer:
    """A consumer that commits only when told to and, without a commit, begins at the
    earliest record; with ``group_id=None`` it joins no group and never commits."""
    return AIOKafkaConsumer(
        **{
            **_common(settings),
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            **options,
        }
    )


def kafka_admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    """An admin client (topics, groups, offsets)."""
    return AIOKafkaAdminClient(**_common(settings))


async def start(client: C, settings: KafkaSettings, timeout: float | None = None) -> C:
    """Connects ``client``, bounded; on failure leaves nothing open.

    Raises:
        KafkaUnavailableError: no broker answered within ``timeout`` (the request
            timeout by default).
    """
    try:
        await bounded(client.start(), settings, "connecting", timeout)
    except KafkaUnavailableError:
        await stop(client, 0.5)
        if settings.security_protocol is not SecurityProtocol.PLAINTEXT:
            await _explain_refusal(settings, timeout)
        raise
    except BaseException:  # cancelled while connecting too: close what was opened
        await stop(client, 0.5)
        raise
    return client


async def _explain_refusal(settings: KafkaSettings, timeout: float | None) -> None:
    """Raises why a secured connection failed, when the brokers refused it (a wrong
    password, a certificate the CA file does not trust) rather than did not answer.

    Raises:
        KafkaAccessDeniedError: the credential was refused.
        ConfigurationError: TLS failed: the brokers' certificate is not one the CA file
            trusts, or they do not speak TLS.
    """
    host, _, port = settings.servers[0].rpartition(":")
    options = {
        "request_timeout_ms": int(settings.request_timeout_s * 1000),
        **security_options(settings),
    }
    try:
        await bounded(
            probe_connection(host, int(port), options), settings, "authenticating", timeout
        )
    except KafkaUnavailableError as exc:
        if isinstance(exc.__cause__, ssl.SSLError):
            raise ConfigurationError(
                f"TLS with Kafka at {settings.bootstrap_servers} failed ({exc.__cause__});"
                " check MATIH_KAFKA_CA_FILE and MATIH_KAFKA_SECURITY_PROTOCOL"
            ) from exc.__cause__


async def stop(client: KafkaClient, timeout: float) -> None:
    """Disconnects ``client``, waiting at most ``timeout`` s; a failure is logged, not raised
    (nothing can be done about a broker that is gone while closing)."""
    closing = client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop()
    try:
        await asyncio.wait_for(closing, timeout)
    except KAFKA_FAILURES as exc:
        logger.warning("Kafka client did not stop cleanly within %gs: %r", timeout, exc)
