"""How long a client waits before it tries to reach Kafka again: one schedule for the
SDK's sender and the gateway alike."""

from __future__ import annotations

RECONNECT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Waits before the 1st, 2nd, ... try; the last one repeats."""


def reconnect_delay(attempt: int) -> float:
    """Seconds to wait before try number ``attempt`` (0 for the first retry)."""
    return RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)]
