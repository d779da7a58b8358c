"""Topic layout on a cluster: replicated by default from 3 brokers, refused when it
cannot work."""

from __future__ import annotations

import pytest

from ingest.errors import ConfigurationError
from ingest.replication import topic_layout
from ingest.settings import KafkaSettings


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, 1)), (2, (1, 1)), (3, (3, 2)), (5, (3, 2))]
)
def test_defaults_follow_the_cluster_size(brokers: int, expected: tuple[int, int]) -> None:
    layout = topic_layout(KafkaSettings(), brokers)
    assert (layout.replication_factor, layout.min_insync_replicas) == expected
    assert layout.configs() == {
        "min.insync.replicas": str(expected[1]),
        "retention.ms": str(7 * 24 * 3_600_000),
    }


def test_settings_win_over_the_defaults() -> None:
    settings = KafkaSettings(replication_factor=2, min_insync_replicas=1, retention_hours=1)
    layout = topic_layout(settings, 3)
    assert (layout.replication_factor, layout.min_insync_replicas) == (2, 1)
    assert layout.retention_ms == 3_600_000


def test_a_replication_factor_larger_than_the_cluster_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigurationError, match=r"REPLICATION_FACTOR=3 .* has 1 broker") as info:
        topic_layout(KafkaSettings(replication_factor=3), 1)
    assert "\n" not in str(info.value)


def test_min_insync_larger_than_the_replication_factor_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="MIN_INSYNC_REPLICAS=3"):
        topic_layout(KafkaSettings(replication_factor=2, min_insync_replicas=3), 3)


def test_bootstrap_servers_split_one_by_one() -> None:
    """FastStream takes one string as one address: a cluster's list must be split."""
    settings = KafkaSettings(bootstrap_servers="a:9092, b:9092,c:9092")
    assert settings.servers == ["a:9092", "b:9092", "c:9092"]
