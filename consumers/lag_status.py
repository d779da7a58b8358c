"""Consumer health from a sliding window of lag samples, judged the way Burrow does.

Burrow (LinkedIn's lag checker) needs no lag threshold: it keeps the last few
commits of each partition (offset, commit time, lag then) and applies these rules,
worst first, to each partition:

1. OK when the lag is zero now, or was zero at any point in the window.
2. REWIND when the committed offset went backwards in the window.
3. STOP when the time since the last commit is longer than the span between the
   first and the last commit of the window: the consumer stopped committing.
4. STALL when every offset in the window is the same: the consumer is there but
   not moving past a record.
5. WARN when the offsets move but the lag never went down: the consumer is slower
   than the producers.
6. OK otherwise.

A group is ERR when any partition is REWIND, STOP or STALL, WARN when any is WARN,
else OK; ERR also when the offsets could not be read at all.

What differs here, and why: Burrow reads every commit from ``__consumer_offsets``,
with its time. We sample the committed offset (what ``kafka-consumer-groups``
reads), which shows neither commit times nor re-commits of the same offset. So:

* a commit's time is taken as the time of the sample that first showed it;
* Burrow tells STOP from STALL by whether commits keep arriving; we tell them
  apart by group membership, sampled too: STOP needs the partition to have had no
  live owner in every sample of the window (so a rebalance is not a stop), and
  rule 3 to hold for at least ``stop_after_s``. A partition that does not move while
  a live member holds it (a worker retrying a store that is down) is STALL.
* rules 3 to 5 need at least two samples; one sample judges only rule 1.
* a partition where the group has committed nothing (Burrow never sees one: it
  reads commits) is judged from the log start, where ``auto_offset_reset=earliest``
  begins, and "committed" stays "nothing" however retention moves the log start.
  While its records wait it is never OK: rule 1 does not apply (a zero lag then
  meant an empty partition, not a consumer keeping up), a single sample is WARN,
  and so is "OK otherwise". With two samples or more it is STOP (nobody holds it)
  or STALL (a member holds it but has committed nothing yet).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise

__all__ = [
    "LagStatus",
    "PartitionSample",
    "StatusRules",
    "StatusWindow",
    "evaluate_group",
    "evaluate_partition",
]


class LagStatus(StrEnum):
    """The health of a partition or a group, Burrow's names."""

    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    REWIND = "REWIND"
    ERR = "ERR"


_ERRORS = frozenset({LagStatus.STALL, LagStatus.STOP, LagStatus.REWIND, LagStatus.ERR})


@dataclass(frozen=True, slots=True)
class PartitionSample:
    """One look at a partition: when, where the group was, where the log ended."""

    at: float
    """When the sample was taken, seconds (any monotonic-enough clock)."""
    committed: int | None
    """The group's committed offset; None when it has committed nothing here."""
    log_end: int
    owned: bool
    """Whether a live member of the group held the partition."""
    log_start: int = 0
    """The partition's first offset: where the group begins while it has no commit."""

    @property
    def position(self) -> int:
        """Where the group's next read begins: its commit, else the log start."""
        return self.log_start if self.committed is None else self.committed

    @property
    def lag(self) -> int:
        """Records the group has yet to consume here."""
        return max(self.log_end - self.position, 0)

    @property
    def waiting_uncommitted(self) -> bool:
        """Records wait and the group has committed nothing: no sign it ever read here."""
        return self.committed is None and self.lag > 0


@dataclass(frozen=True)
class StatusRules:
    """How much history to judge on.

    Args:
        window: samples kept per partition (Burrow's ``intervals``, default 10).
        stop_after_s: the least time without progress before STOP.
    """

    window: int = 10
    stop_after_s: float = 0.0


def evaluate_partition(  # noqa: PLR0911 - one return per rule, in Burrow's order
    samples: Sequence[PartitionSample], rules: StatusRules | None = None
) -> LagStatus:
    """The status of one partition from its samples, oldest first (see the module doc)."""
    rules = rules or StatusRules()
    if not samples:
        return LagStatus.OK
    # Never OK while records wait and nothing is committed (see the module doc).
    unproven = samples[-1].waiting_uncommitted
    if not unproven and any(sample.lag == 0 for sample in samples):
        return LagStatus.OK
    if any(later.position < earlier.position for earlier, later in _pairs(samples)):
        return LagStatus.REWIND
    if len(samples) < 2:
        return LagStatus.WARN if unproven else LagStatus.OK
    if _stopped(samples, rules):
        return LagStatus.STOP
    # Commits, not positions: a log start moved by retention is no progress.
    if all(sample.committed == samples[0].committed for sample in samples):
        return LagStatus.STALL
    if all(later.lag >= earlier.lag for earlier, later in _pairs(samples)):
        return LagStatus.WARN
    return LagStatus.WARN if unproven else LagStatus.OK


def evaluate_group(statuses: Iterable[LagStatus]) -> LagStatus:
    """A group's status from its partitions': ERR, WARN or OK, as Burrow rolls up."""
    worst = LagStatus.OK
    for status in statuses:
        if status in _ERRORS:
            return LagStatus.ERR
        if status is LagStatus.WARN:
            worst = LagStatus.WARN
    return worst


def _pairs(samples: Sequence[PartitionSample]) -> Iterable[tuple[PartitionSample, PartitionSample]]:
    return pairwise(samples)


def _stopped(samples: Sequence[PartitionSample], rules: StatusRules) -> bool:
    if any(sample.owned for sample in samples):
        return False
    now = samples[-1].at
    first_commit = samples[0].at
    last_commit = next(s.at for s in samples if s.committed == samples[-1].committed)
    idle = now - last_commit
    return idle > last_commit - first_commit and idle >= rules.stop_after_s


@dataclass
class StatusWindow:
    """The last ``rules.window`` samples of each partition, and their statuses."""

    rules: StatusRules = field(default_factory=StatusRules)
    _samples: dict[tuple[str, int], deque[PartitionSample]] = field(default_factory=dict)

    def add(self, topic: str, partition: int, sample: PartitionSample) -> None:
        """Adds a sample, dropping the oldest once the window is full."""
        key = (topic, partition)
        if key not in self._samples:
            self._samples[key] = deque(maxlen=self.rules.window)
        self._samples[key].append(sample)

    def status(self, topic: str, partition: int) -> LagStatus:
        """The partition's status over its window."""
        return evaluate_partition(list(self._samples.get((topic, partition), ())), self.rules)

    def samples(self, topic: str, partition: int) -> list[PartitionSample]:
        """The partition's window, oldest first."""
        return list(self._samples.get((topic, partition), ()))
