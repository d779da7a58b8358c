"""The lag status rules (Burrow's, over sampled offsets) on synthetic sample windows."""

from __future__ import annotations

import pytest

from consumers.lag_status import (
    LagStatus,
    PartitionSample,
    StatusRules,
    StatusWindow,
    evaluate_group,
    evaluate_partition,
)


def window(*rows: tuple[float, int, int], owned: bool = True) -> list[PartitionSample]:
    """Samples from (time, committed, log_end) rows."""
    return [PartitionSample(at, committed, end, owned) for at, committed, end in rows]


def test_no_samples_is_ok() -> None:
    assert evaluate_partition([]) is LagStatus.OK


def test_zero_lag_anywhere_in_the_window_is_ok_even_if_nothing_moves_now() -> None:
    """Rule 1: a consumer that was caught up during the window is fine."""
    samples = window((0, 10, 10), (1, 10, 15), (2, 10, 20), owned=False)
    assert evaluate_partition(samples) is LagStatus.OK


def test_a_committed_offset_going_back_is_rewind() -> None:
    samples = window((0, 10, 20), (1, 12, 22), (2, 5, 25))
    assert evaluate_partition(samples) is LagStatus.REWIND


def test_unowned_and_not_moving_with_lag_is_stop() -> None:
    """Rule 3: no live owner in the window, and no commit since the window began."""
    samples = window((0, 10, 20), (1, 10, 21), (2, 10, 22), owned=False)
    assert evaluate_partition(samples) is LagStatus.STOP


def test_stop_waits_for_the_threshold() -> None:
    samples = window((0, 10, 20), (1, 10, 21), (2, 10, 22), owned=False)
    assert evaluate_partition(samples, StatusRules(stop_after_s=5)) is LagStatus.STALL
    later = [*samples, PartitionSample(6, 10, 22, False)]
    assert evaluate_partition(later, StatusRules(stop_after_s=5)) is LagStatus.STOP


def test_stop_needs_the_last_commit_older_than_the_commit_span() -> None:
    """Rule 3 as Burrow states it: commits from t=0 to t=10, last seen at 10; at t=15 the
    idle time (5) is not longer than the span (10): not stopped, but lag not falling."""
    samples = window((0, 0, 50), (10, 10, 60), (15, 10, 61), owned=False)
    assert evaluate_partition(samples) is LagStatus.WARN
    samples.append(PartitionSample(21, 10, 61, False))
    assert evaluate_partition(samples) is LagStatus.STOP


def test_a_rebalance_moment_is_not_stop() -> None:
    """One unowned sample among owned ones (a rebalance) does not make STOP."""
    samples = [
        PartitionSample(0, 10, 20, True),
        PartitionSample(1, 10, 21, False),
        PartitionSample(2, 10, 22, True),
    ]
    assert evaluate_partition(samples) is LagStatus.STALL


def test_owned_and_not_moving_with_lag_is_stall() -> None:
    """Rule 4: the consumer is there (it holds the partition) but does not move."""
    samples = window((0, 10, 20), (1, 10, 20), (2, 10, 20), owned=True)
    assert evaluate_partition(samples) is LagStatus.STALL


def test_moving_but_lag_never_falling_is_warn() -> None:
    """Rule 5: offsets advance, lag grows or stays: slower than the producers."""
    samples = window((0, 10, 20), (1, 15, 27), (2, 20, 32))
    assert evaluate_partition(samples) is LagStatus.WARN


def test_moving_and_lag_falling_somewhere_is_ok() -> None:
    samples = window((0, 10, 20), (1, 15, 30), (2, 25, 31))
    assert evaluate_partition(samples) is LagStatus.OK


def test_one_sample_with_lag_cannot_judge_more_than_rule_one() -> None:
    assert evaluate_partition(window((0, 10, 20), owned=False)) is LagStatus.OK


def uncommitted(*rows: tuple[float, int, int], owned: bool = False) -> list[PartitionSample]:
    """Samples of a partition the group has committed nothing on, from (time, log_start,
    log_end) rows."""
    return [PartitionSample(at, None, end, owned, start) for at, start, end in rows]


def test_without_a_commit_the_lag_counts_from_the_log_start() -> None:
    (sample,) = uncommitted((0, 40, 172))
    assert sample.position == 40
    assert sample.lag == 132


def test_one_sample_with_records_waiting_and_nothing_committed_is_warn_not_ok() -> None:
    """The reported bug: a group that has committed nothing is not caught up."""
    assert evaluate_partition(uncommitted((0, 0, 172))) is LagStatus.WARN
    assert evaluate_partition(uncommitted((0, 0, 172), owned=True)) is LagStatus.WARN


def test_nothing_committed_and_nobody_holding_the_partition_is_stop() -> None:
    samples = uncommitted((0, 0, 172), (1, 0, 172), (2, 0, 180))
    assert evaluate_partition(samples) is LagStatus.STOP


def test_nothing_committed_while_a_member_holds_the_partition_is_stall() -> None:
    """A worker on its first batch for the whole window: no progress is visible."""
    samples = uncommitted((0, 0, 172), (1, 0, 172), (2, 0, 172), owned=True)
    assert evaluate_partition(samples) is LagStatus.STALL


def test_an_empty_partition_earlier_in_the_window_does_not_make_it_ok() -> None:
    """Rule 1 needs a consumer that was caught up; without a commit a zero lag only meant
    an empty partition."""
    samples = uncommitted((0, 0, 0), (1, 0, 172), (2, 0, 172))
    assert evaluate_partition(samples) is LagStatus.STOP


def test_retention_moving_the_log_start_is_not_progress() -> None:
    """The log start moves and the lag falls, but the group commits nothing: never OK."""
    samples = uncommitted((0, 0, 172), (1, 50, 172), (2, 100, 172), owned=True)
    assert evaluate_partition(samples) is LagStatus.STALL


def test_an_empty_partition_without_a_commit_is_ok() -> None:
    assert evaluate_partition(uncommitted((0, 7, 7), (1, 7, 7))) is LagStatus.OK


def test_a_first_commit_is_progress() -> None:
    samples = [*uncommitted((0, 0, 172), (1, 0, 172), owned=True)]
    samples.append(PartitionSample(2, 172, 172, True))
    assert evaluate_partition(samples) is LagStatus.OK
    samples[-1] = PartitionSample(2, 100, 172, True)
    assert evaluate_partition(samples) is LagStatus.OK


def test_a_commit_lost_below_it_is_rewind() -> None:
    """Offsets gone (expired or deleted): the group will read again from the log start."""
    samples = [PartitionSample(0, 100, 172, False), PartitionSample(1, None, 172, False, 0)]
    assert evaluate_partition(samples) is LagStatus.REWIND


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], LagStatus.OK),
        ([LagStatus.OK, LagStatus.OK], LagStatus.OK),
        ([LagStatus.OK, LagStatus.WARN], LagStatus.WARN),
        ([LagStatus.WARN, LagStatus.STALL], LagStatus.ERR),
        ([LagStatus.OK, LagStatus.STOP], LagStatus.ERR),
        ([LagStatus.REWIND], LagStatus.ERR),
    ],
)
def test_group_status_rolls_up_as_burrow_does(
    statuses: list[LagStatus], expected: LagStatus
) -> None:
    assert evaluate_group(statuses) is expected


def test_the_window_keeps_only_the_last_samples() -> None:
    """A partition that stopped long ago and then caught up is judged on recent samples."""
    store = StatusWindow(StatusRules(window=3))
    for at in range(5):
        store.add("t", 0, PartitionSample(at, 10, 20, False))
    assert store.status("t", 0) is LagStatus.STOP
    for at, committed in ((5, 15), (6, 20), (7, 20)):
        store.add("t", 0, PartitionSample(at, committed, 20, True))
    assert [s.at for s in store.samples("t", 0)] == [5, 6, 7]
    assert store.status("t", 0) is LagStatus.OK
    assert store.status("t", 1) is LagStatus.OK
