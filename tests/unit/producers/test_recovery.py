"""Where ``matih-ingest spool flush`` sends a spool: where its owner was sending it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from ingest.ids import new_run_id
from ingest.settings import KafkaSettings
from ingest.topics import publish_topic
from producers import ProducerSettings
from producers.delivery.buffer import EventBuffer, RunIdentity
from producers.delivery.recovery import recovery_settings
from producers.delivery.router import EventRouter
from tests.unit.producers.test_router import ControlledPublisher


async def spooled_owner(tmp_path: Path, tenant_topics: bool) -> dict[str, object]:
    """The ``owner.json`` of the spool a router opens when Kafka fails its record."""
    settings = ProducerSettings(
        kafka=KafkaSettings(
            bootstrap_servers="127.0.0.1:1", topic="t.events", tenant_topics=tenant_topics
        ),
        spool_dir=tmp_path / "spool",
    )
    buffer = EventBuffer(max_bytes=10**6)
    publisher = ControlledPublisher()
    router = EventRouter(settings, buffer, None, publisher)  # type: ignore[arg-type]
    buffer.add_metrics(RunIdentity("acme-corp", new_run_id(), "exp"), 0, 1_000, [("loss", 0.5)])
    await router.step()
    publisher.futures[0].set_exception(KafkaConnectionError())
    await asyncio.sleep(0)
    await router.step()
    assert router.spool is not None
    owner = router.spool.owner()
    router.spool.close()
    return owner


async def test_a_spool_written_for_tenant_topics_is_flushed_to_each_tenants_topic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported bug: the spool forgot its tenant topics, so a flush sent a tenant's
    events to the shared topic, where its credential is refused."""
    monkeypatch.delenv("MATIH_KAFKA_TENANT_TOPICS", raising=False)
    owner = await spooled_owner(tmp_path, tenant_topics=True)
    assert owner["tenant_topics"] is True
    assert "password" not in owner
    kafka = recovery_settings(owner).kafka
    assert publish_topic(kafka, "acme-corp") == "t.events.tenant.acme-corp"
    moved = recovery_settings(owner, "other:9093", "u.events").kafka
    assert (moved.bootstrap_servers, publish_topic(moved, "acme-corp")) == (
        "other:9093",
        "u.events.tenant.acme-corp",
    )


async def test_a_spool_written_for_the_shared_topic_stays_there_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATIH_KAFKA_TENANT_TOPICS", "true")
    owner = await spooled_owner(tmp_path, tenant_topics=False)
    assert owner["tenant_topics"] is False
    assert publish_topic(recovery_settings(owner).kafka, "acme-corp") == "t.events"


@pytest.mark.parametrize(
    ("environment", "topic"), [(None, "t.events"), ("true", "t.events.tenant.acme-corp")]
)
def test_a_spool_from_before_the_field_keeps_todays_meaning(
    monkeypatch: pytest.MonkeyPatch, environment: str | None, topic: str
) -> None:
    """An ``owner.json`` without ``tenant_topics`` takes it from the environment, as
    every flush did before spools recorded it."""
    if environment is None:
        monkeypatch.delenv("MATIH_KAFKA_TENANT_TOPICS", raising=False)
    else:
        monkeypatch.setenv("MATIH_KAFKA_TENANT_TOPICS", environment)
    owner = {"bootstrap_servers": "127.0.0.1:1", "topic": "t.events", "key_strategy": "tenant"}
    assert publish_topic(recovery_settings(owner).kafka, "acme-corp") == topic
