"""What a worker has done, for logs, tests and (later) metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class WorkerStats:
    """Counts since the worker started."""

    batches: int = 0
    consumed: int = 0
    points: int = 0
    """Metric points read from records (those later rejected included)."""
    decode_cpu_s: float = 0.0
    """CPU time spent reading records into events."""
    write_s: float = 0.0
    """Time spent waiting for the store to take the writes (and for dead letters)."""
    rejected: int = 0
    retries: int = 0
    rejected_by_kind: Counter[str] = field(default_factory=Counter)

    def summary(self, process_cpu_s: float) -> str:
        """One line for the log at shutdown: what was written, and where the time went per
        metric point (the worker's own CPU, of which decoding, and the store's wall time),
        so that capacity can be planned from it."""
        line = (
            f"{self.consumed} records, {self.points} metric points in {self.batches} writes,"
            f" {self.rejected} rejected, {self.retries} retried"
        )
        if self.points:
            per_point = 1e6 / self.points
            line += (
                f"; per point: worker CPU {process_cpu_s * per_point:.1f} µs"
                f" (decoding {self.decode_cpu_s * per_point:.1f} µs),"
                f" store {self.write_s * per_point:.1f} µs"
            )
        return line
