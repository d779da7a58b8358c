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

from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from ingest.errors import IngestError, KafkaAccessDeniedError, KafkaUnavailableError
from ingest.settings import KafkaSettings

__all__ = ["ACCESS_DENIALS", "KAFKA_FAILURES", "access_denied", "bounded", "kafka_errors"]

T = TypeVar("T")

KAFKA_FAILURES: tuple[type[BaseException], ...] = (TimeoutError, KafkaError, OSError)
"""What a Kafka call raises when the cluster is away or refuses: a wait that ran out,
an aiokafka error, or a socket error underneath."""


ACCESS_DENIALS: tuple[type[KafkaError], ...] = (
    AuthenticationFailedError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
"""What the brokers answer to a credential they refuse or an operation no ACL allows:
never retriable."""

_REFUSED = {
    TopicAuthorizationFailedError: "no ACL allows it on the topic",
    GroupAuthorizationFailedError: "no ACL allows it on the consumer group",
    ClusterAuthorizationFailedError: "no ACL allows it on the cluster",
    TransactionalIdAuthorizationFailed: "no ACL allows it on the transactional id",
}


def access_denied(
    settings: KafkaSettings, doing: str, exc: BaseException
) -> KafkaAccessDeniedError:
    """The project's error for a refusal ``exc`` of the brokers, naming the principal and
    the refused operation (``doing``); never a secret."""
    who = (
        f"principal {settings.username!r} ({settings.sasl_mechanism.value})"
        if settings.sasl
        else f"an unauthenticated {settings.security_protocol.value} client"
    )
    if isinstance(exc, AuthenticationFailedError | SaslAuthenticationFailed):
        return KafkaAccessDeniedError(
            f"Kafka at {settings.bootstrap_servers} refused the credential of {who} ({doing}):"
            " authentication failed; check MATIH_KAFKA_USERNAME and MATIH_KAFKA_PASSWORD"
        )
    reason = next((text for kind, text in _REFUSED.items() if isinstance(exc, kind)), str(exc))
    topic = (
        f" (topic {exc.args[0]})"
        if isinstance(exc, TopicAuthorizationFailedError) and exc.args
        else ""
    )
    return KafkaAccessDeniedError(
        f"Kafka at {settings.bootstrap_servers} refused {who} {doing}{topic}: {reason}"
        f" ({type(exc).__name__}); a tenant's credential may write only its own topic"
    )


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
    except ACCESS_DENIALS as exc:
        raise access_denied(settings, doing, exc) from exc
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
