"""A worker's health: ``/healthz`` (the process serves) and ``/readyz`` (a member of
its group, and the store answers), served beside ``/metrics``.

Membership comes from the group's rebalance callbacks: a worker is in its group from
its first assignment (even an empty one: a worker beyond the partition count is a
member with nothing to do, standing by, and says so once) until it leaves. The store
is probed at most every ``CHECK_EVERY_S`` seconds, so that a probe every few seconds
costs the store nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from typing import Any

import sqlalchemy
from aiokafka.abc import ConsumerRebalanceListener

from ingest.settings import MlflowSettings

__all__ = ["WorkerHealth", "store_reachable"]

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0
STORE_TIMEOUT_S = 3.0


def store_reachable(settings: MlflowSettings, timeout: float = STORE_TIMEOUT_S) -> str | None:
    """None if the MLflow store answers, else what went wrong, in one line."""
    uri = settings.tracking_uri
    try:
        if uri.startswith(("http://", "https://")):
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
                return None
        args: dict[str, Any] = {"connect_timeout": int(timeout)} if "postgresql" in uri else {}
        engine = sqlalchemy.create_engine(uri, connect_args=args, poolclass=sqlalchemy.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("select 1"))
        finally:
            engine.dispose()
    except Exception as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        return f"the MLflow store {_redacted(uri)} does not answer: {type(exc).__name__}: {first}"
    return None


def _redacted(uri: str) -> str:
    """The URI without its password."""
    scheme, sep, rest = uri.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        rest = f"{credentials.split(':', 1)[0]}:***@{host}"
    return f"{scheme}{sep}{rest}"


class _Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, health: WorkerHealth) -> None:
        self._health = health
        self._idle = False

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._health.in_group = False

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._health.in_group = True
        idle = not assigned
        if idle and not self._idle:
            logger.warning(
                "this worker was given no partition: its group has more workers than the"
                " events topic has partitions; it stands by and takes partitions over when"
                " a worker leaves (run at most as many workers as partitions)"
            )
        self._idle = idle


class WorkerHealth:
    """What ``/readyz`` answers for one worker."""

    def __init__(self, store: MlflowSettings) -> None:
        self._store = store
        self.in_group = False
        self.listener = _Membership(self)
        self._lock = threading.Lock()
        self._checked_at = -CHECK_EVERY_S
        self._store_problem: str | None = "the store has not been checked yet"

    def readiness(self) -> str | None:
        """None when ready, else why not."""
        if not self.in_group:
            return "not a member of its consumer group (yet)"
        with self._lock:
            if time.monotonic() - self._checked_at >= CHECK_EVERY_S:
                self._store_problem = store_reachable(self._store)
                self._checked_at = time.monotonic()
            return self._store_problem
