"""Kafka security settings: every client gets them, secrets never show, refusals are
named with the principal and the refused operation."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import SaslAuthenticationFailed, TopicAuthorizationFailedError
from pydantic import ValidationError

from consumers.app import worker_security
from ingest.errors import KafkaAccessDeniedError
from ingest.kafka import (
    access_denied,
    kafka_errors,
    security_options,
)
from ingest.settings import KafkaSettings
from ingest.topics import events_pattern, is_events_topic, publish_topic, tenant_of_topic

SECRET = "s3cret-never-shown"


def secure(**overrides: object) -> KafkaSettings:
    return KafkaSettings(
        **{
            "security_protocol": "SASL_SSL",
            "username": "acme-corp",
            "password": SECRET,
            **overrides,
        }
    )


def test_security_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATIH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MATIH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("MATIH_KAFKA_USERNAME", "globex")
    monkeypatch.setenv("MATIH_KAFKA_PASSWORD", SECRET)
    settings = KafkaSettings()
    assert settings.sasl
    assert settings.tls
    assert security_options(settings)["sasl_mechanism"] == "SCRAM-SHA-256"
    assert security_options(settings)["sasl_plain_username"] == "globex"
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_sasl_without_a_credential_is_refused_naming_the_settings() -> None:
    with pytest.raises(ValidationError, match="MATIH_KAFKA_USERNAME and MATIH_KAFKA_PASSWORD"):
        KafkaSettings(security_protocol="SASL_SSL", username="acme-corp")


def test_plaintext_needs_no_credential_and_sends_none() -> None:
    assert security_options(KafkaSettings()) == {"security_protocol": "PLAINTEXT"}
    assert worker_security(KafkaSettings()) is None


def test_the_worker_takes_the_same_identity_through_faststream() -> None:
    security = worker_security(secure(sasl_mechanism="SCRAM-SHA-512"))
    assert security is not None
    assert type(security).__name__ == "SASLScram512"
    assert security.use_ssl


def test_a_refused_credential_names_the_principal_never_the_password() -> None:
    error = access_denied(secure(), "connecting", SaslAuthenticationFailed("invalid"))
    assert str(error) == (
        "Kafka at 127.0.0.1:9092 refused the credential of principal 'acme-corp'"
        " (SCRAM-SHA-512) (connecting): authentication failed; check MATIH_KAFKA_USERNAME"
        " and MATIH_KAFKA_PASSWORD"
    )
    assert not error.retriable


def test_a_topic_refusal_names_the_principal_the_operation_and_the_topic() -> None:
    settings = secure()
    with (
        pytest.raises(KafkaAccessDeniedError) as caught,
        kafka_errors(settings, "writing tenant 'globex''s events"),
    ):
        raise TopicAuthorizationFailedError("matih.runs.events.tenant.globex")
    assert str(caught.value) == (
        "Kafka at 127.0.0.1:9092 refused principal 'acme-corp' (SCRAM-SHA-512) writing tenant"
        " 'globex''s events (topic matih.runs.events.tenant.globex): no ACL allows it on the"
        " topic (TopicAuthorizationFailedError); a tenant's credential may write only its own"
        " topic"
    )
    assert SECRET not in str(caught.value)


def test_tenant_topics_are_named_once_and_matched_exactly() -> None:
    settings = KafkaSettings(topic="matih.runs.events", tenant_topics=True)
    assert publish_topic(settings, "acme-corp") == "matih.runs.events.tenant.acme-corp"
    assert publish_topic(settings.model_copy(update={"tenant_topics": False}), "acme-corp") == (
        "matih.runs.events"
    )
    assert tenant_of_topic(settings, "matih.runs.events.tenant.acme-corp") == "acme-corp"
    assert tenant_of_topic(settings, "matih.runs.events") is None
    assert events_pattern(settings).startswith("^matih\\.runs\\.events(")
    matched = {
        "matih.runs.events": True,
        "matih.runs.events.tenant.acme-corp": True,
        "matih.runs.events.tenant.a.b_c-d": True,
        "matih.runs.events.dlq": False,
        "matih.runs.events.tenant.": False,
        "matih.runs.eventsXtenant.acme": False,
        "other.matih.runs.events": False,
    }
    assert {topic: is_events_topic(settings, topic) for topic in matched} == matched


def test_a_sasl_client_keeps_its_handshake_out_of_debug_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiokafka logs each request at DEBUG; with PLAIN the SASL request holds the password
    in clear. Building a SASL client's options installs the filter that drops it."""
    caplog.set_level(logging.DEBUG, logger="aiokafka.conn")
    security_options(secure(sasl_mechanism="PLAIN"))
    connection = logging.getLogger("aiokafka.conn")
    request = f"SaslAuthenticateRequest_v1(auth_bytes=b'\\x00acme-corp\\x00{SECRET}')"
    connection.debug("Request to %s:%d %d: %s", "127.0.0.1", 9092, 4, request)
    connection.debug("Request to %s:%d %d: %s", "127.0.0.1", 9092, 5, "MetadataRequest_v1()")
    assert SECRET not in caplog.text
    assert "MetadataRequest_v1()" in caplog.text
