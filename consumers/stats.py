"""What a worker has done, for logs, tests and (later) metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class WorkerStats:
    """Counts since the worker started."""

    batches: int = 0
    consumed: int = 0
    rejected: int = 0
    retries: int = 0
    rejected_by_kind: Counter[str] = field(default_factory=Counter)
