"""The MLflow plugin's tracking URI: broker and tenant from the URI, the rest from settings;
every mistake is one line that says how to write it."""

from __future__ import annotations

import pytest

from ingest.errors import InvalidEventError
from producers import ProducerSettings
from producers.mlflow.uri import plugin_settings


def test_the_uri_names_the_brokers_and_the_tenant_and_keeps_the_other_settings() -> None:
    base = ProducerSettings(linger_ms=7)
    settings = plugin_settings("matih://k1:9092,k2:9092?tenant=acme-corp", base)
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.kafka.servers == ["k1:9092", "k2:9092"]
    assert settings.tenant_id == "acme-corp"
    assert settings.linger_ms == 7
    assert settings.kafka.topic == base.kafka.topic


def test_the_tenant_may_come_from_the_settings() -> None:
    settings = plugin_settings("matih://k1:9092", ProducerSettings(tenant_id="globex"))
    assert settings.tenant_id == "globex"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://k1:9092?tenant=a", "is not a matih:// URI: use matih://<host:port"),
        ("matih://?tenant=a", "is not a matih:// URI"),
        ("matih://k1:9092/path?tenant=a", "is not a matih:// URI"),
        ("matih://k1:9092?tenant=a&topic=x", "unknown parameter 'topic'"),
        ("matih://k1:9092?tenant=a&tenant=b", "names more than one tenant"),
        ("matih://k1:9092", "names no tenant: use matih://.*or set MATIH_PRODUCER_TENANT_ID"),
        ("matih://k1:9092?tenant=-bad", "tenant id '-bad' must be 1-64 letters"),
    ],
)
def test_a_malformed_uri_is_refused_with_the_rule(uri: str, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        plugin_settings(uri, ProducerSettings())
