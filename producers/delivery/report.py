"""``DeliveryReport``: what the SDK has not yet delivered to Kafka, as a flush or a close
leaves it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeliveryReport"]


@dataclass(frozen=True)
class DeliveryReport:
    """What a flush left undelivered (all zero when everything was acknowledged)."""

    buffered_calls: int
    unsent_events: int
    in_flight: int
    spooled_events: int = 0
    """Events in the on-disk spool, not yet acknowledged by Kafka."""
    spooled_points: int = 0
    """Metric points in those events."""
    spool_path: str | None = None
    """The spool's directory, if this process made one."""
    dropped_points: int = 0
    """Metric points dropped by the full policies (buffer, backlog and spool) so far."""
    spilled_points: int = 0
    """Metric points written to the spool so far (memory full, or Kafka out of reach)."""
    rejected_events: int = 0
    """Events refused for good so far (over Kafka's request size, a write right taken
    away, an unreadable spool record), each logged as an error when it happened."""

    @property
    def complete(self) -> bool:
        """Whether every call and event was acknowledged by Kafka."""
        held = self.buffered_calls + self.unsent_events + self.in_flight + self.spooled_events
        return held == 0
