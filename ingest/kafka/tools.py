"""Kafka's own admin tools, for the calls aiokafka's admin client lacks.

aiokafka 0.14's ``AIOKafkaAdminClient`` creates and deletes topics and reads groups,
but has no call for SCRAM credentials (``AlterUserScramCredentials``), ACLs or client
quotas. Kafka's command-line tools have all three (``kafka.admin.ConfigCommand``,
``org.apache.kafka.tools.AclCommand``), in the jars ``deploy/kafka/kafka.sh fetch``
resolves; rather than hand-write those wire protocols, ``matih-ingest tenants`` runs
them (a JVM each, about 2 s). The client's own credential goes in a file of mode 600,
deleted after the call. A new SCRAM password has to go on the tool's command line
(Kafka 4.1's ``--add-config-file`` mangles SCRAM keys), where the host's process list
shows it while the call runs; it is masked in every message.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tempfile
from pathlib import Path

from ingest.errors import ConfigurationError, KafkaAccessDeniedError, KafkaUnavailableError
from ingest.settings import KafkaSettings, SaslMechanism

__all__ = ["ACL_TOOL", "CONFIG_TOOL", "KafkaTools"]

CONFIG_TOOL = "kafka.admin.ConfigCommand"
ACL_TOOL = "org.apache.kafka.tools.AclCommand"
_LOGIN_MODULES = {
    SaslMechanism.SCRAM_SHA_512: "org.apache.kafka.common.security.scram.ScramLoginModule",
    SaslMechanism.SCRAM_SHA_256: "org.apache.kafka.common.security.scram.ScramLoginModule",
    SaslMechanism.PLAIN: "org.apache.kafka.common.security.plain.PlainLoginModule",
}
_PASSWORDS = re.compile(r"(password=)[^\],;\s\"]+")
_DENIED = ("AuthorizationException", "SaslAuthenticationException", "AuthenticationException")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def client_properties(settings: KafkaSettings) -> str:
    """Kafka's client config for the settings' protocol, identity and CA (what
    ``ingest.kafka.security_options`` gives aiokafka)."""
    lines = [f"security.protocol={settings.security_protocol.value}"]
    if settings.sasl:
        assert settings.username is not None  # the settings refuse SASL without both
        assert settings.password is not None
        module = _LOGIN_MODULES[settings.sasl_mechanism]
        lines += [
            f"sasl.mechanism={settings.sasl_mechanism.value}",
            f"sasl.jaas.config={module} required username={_quoted(settings.username)}"
            f" password={_quoted(settings.password.get_secret_value())};",
        ]
    if settings.tls and settings.ca_file is not None:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={settings.ca_file}"]
    return "\n".join(lines) + "\n"


class KafkaTools:
    """Runs Kafka's admin tools against the settings' cluster, as the settings' principal
    (an operator's: creating credentials and ACLs takes the cluster's ALTER right)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings

    async def run(self, main: str, *args: str) -> str:
        """Runs tool ``main`` with ``args``; returns what it printed.

        Raises:
            KafkaAccessDeniedError: the brokers refused the credential or the operation.
            KafkaUnavailableError: the tool failed otherwise (the cluster away, most often).
            ConfigurationError: there is no java, or no Kafka jars on the classpath.
        """
        settings = self._settings
        with tempfile.TemporaryDirectory(prefix="matih-kafka-tool-") as folder:
            client = self._write(folder, client_properties(settings))
            command = [
                "java",
                "-Xms32m",
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                settings.tools_classpath,
                main,
                "--bootstrap-server",
                settings.bootstrap_servers,
                "--command-config",
                client,
                *args,
            ]
            try:
                # In a thread, not asyncio's subprocess: its transports outlive a loop that
                # asyncio.run closed and complain when collected.
                process = await asyncio.to_thread(
                    subprocess.run, command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                )
            except FileNotFoundError as exc:
                raise ConfigurationError("java is needed for Kafka's admin tools") from exc
            output = process.stdout
        text = _PASSWORDS.sub(r"\1***", output.decode(errors="replace"))
        if process.returncode == 0:
            return text
        what = _PASSWORDS.sub(r"\1***", f"{main.rsplit('.', 1)[-1]} {' '.join(args[:5])}")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        last = next((line for line in lines if "Error" in line or "Exception" in line), "")
        last = last or (lines[-1] if lines else f"exit status {process.returncode}")
        if "ClassNotFoundException" in text or "Could not find or load main class" in text:
            raise ConfigurationError(
                f"Kafka's admin tools are not on {settings.tools_classpath}"
                " (MATIH_KAFKA_TOOLS_CLASSPATH; `make kafka-fetch` resolves them)"
            )
        if any(marker in text for marker in _DENIED):
            who = settings.username or "an unauthenticated client"
            raise KafkaAccessDeniedError(
                f"Kafka at {settings.bootstrap_servers} refused {who!r} ({what}): {last}"
            )
        raise KafkaUnavailableError(f"{what} failed at {settings.bootstrap_servers}: {last}")

    @staticmethod
    def _write(folder: str, content: str) -> str:
        path = Path(folder) / "client.properties"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(content)
        return str(path)
