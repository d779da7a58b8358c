"""Topics as the workers find them: created as configured, or warned about when an
existing events topic has fewer partitions than the workers are configured for."""

from __future__ import annotations

import logging

import pytest

from ingest.kafka import ensure_topics, topic_partitions
from ingest.settings import KafkaSettings
from ingest.topics import dead_letter_topic

pytestmark = pytest.mark.integration


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The topic admin's warnings (not those of other tests' clients still closing)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ingest.kafka.admin" and r.levelno == logging.WARNING
    ]


async def test_missing_topics_are_created_with_the_configured_partitions(
    kafka_settings: KafkaSettings,
) -> None:
    kafka = kafka_settings.model_copy(update={"partitions": 3})
    await ensure_topics(kafka)
    assert len(await topic_partitions(kafka, kafka.topic)) == 3
    assert len(await topic_partitions(kafka, dead_letter_topic(kafka))) == 3


async def test_a_topic_with_fewer_partitions_than_configured_is_kept_and_warned_about(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Partitions are never added behind the operator's back (it moves tenants between
    partitions); one warning says how many workers can share the load."""
    await ensure_topics(kafka_settings.model_copy(update={"partitions": 2}))
    caplog.clear()
    await ensure_topics(kafka_settings.model_copy(update={"partitions": 8}))
    assert len(await topic_partitions(kafka_settings, kafka_settings.topic)) == 2
    (warning,) = warnings(caplog)
    assert f"topic {kafka_settings.topic} has 2 partitions, fewer than the 8 configured" in warning
    assert "at most 2 workers share its load" in warning
    caplog.clear()
    await ensure_topics(kafka_settings.model_copy(update={"partitions": 2}))
    assert not warnings(caplog)
