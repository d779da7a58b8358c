"""A broker in secure mode (SASL_SSL, SCRAM-SHA-512, ACLs enforced) for the tests.

It listens on ``MATIH_TEST_SECURE_KAFKA_PORT`` (default: the session port + 300) with
fresh data, made by ``deploy/kafka/kafka.sh`` with ``KAFKA_SECURE=1``. ``admin`` is
the super-user's settings; ``as_principal`` the same cluster under another identity.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pydantic import SecretStr

from ingest.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


class SecureBroker:
    """A real local Kafka broker with SASL_SSL and StandardAuthorizer."""

    def __init__(self) -> None:
        session_port = int(os.environ.get("MATIH_TEST_KAFKA_PORT", "19092"))
        self.port = int(os.environ.get("MATIH_TEST_SECURE_KAFKA_PORT", session_port + 300))
        self.data = ROOT / ".data" / f"kafka-secure-test-{self.port}"
        self._env = {
            **os.environ,
            "KAFKA_SECURE": "1",
            "KAFKA_PORT": str(self.port),
            "KAFKA_DATA_DIR": str(self.data),
        }

    def start(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)
        subprocess.run([str(KAFKA_SCRIPT), "start"], check=True, env=self._env)

    def stop(self) -> None:
        subprocess.run([str(KAFKA_SCRIPT), "stop"], check=False, env=self._env)
        shutil.rmtree(self.data, ignore_errors=True)

    @property
    def admin_password(self) -> str:
        return (self.data / "secrets" / "admin.password").read_text().strip()

    def admin(self, **overrides: object) -> KafkaSettings:
        """The super-user's settings on this broker (``overrides`` win)."""
        return KafkaSettings(
            **{
                "bootstrap_servers": f"127.0.0.1:{self.port}",
                "security_protocol": "SASL_SSL",
                "username": "admin",
                "password": self.admin_password,
                "ca_file": self.data / "secrets" / "ca.pem",
                "tools_classpath": str(ROOT / ".cache" / "kafka" / "libs" / "*"),
                **overrides,
            }
        )


def as_principal(settings: KafkaSettings, username: str, password: str) -> KafkaSettings:
    """``settings`` under another SASL identity."""
    return settings.model_copy(update={"username": username, "password": SecretStr(password)})


def security_fields(settings: KafkaSettings) -> dict[str, str]:
    """The settings' security fields as plain strings (for a subprocess's spec or env);
    empty for PLAINTEXT."""
    if settings.security_protocol.value == "PLAINTEXT":
        return {}
    fields = {
        "security_protocol": settings.security_protocol.value,
        "sasl_mechanism": settings.sasl_mechanism.value,
        "username": settings.username,
        "password": settings.password.get_secret_value() if settings.password else None,
        "ca_file": str(settings.ca_file) if settings.ca_file else None,
    }
    return {name: value for name, value in fields.items() if value is not None}


def kafka_env(settings: KafkaSettings) -> dict[str, str]:
    """The ``MATIH_KAFKA_*`` variables that give a subprocess the settings' identity."""
    return {
        f"MATIH_KAFKA_{name.upper()}": value for name, value in security_fields(settings).items()
    }
