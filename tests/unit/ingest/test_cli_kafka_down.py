"""With Kafka down, every Kafka command says so in one line and exits 1, never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ingest.cli.main import app

runner = CliRunner()
NOWHERE = {"MATIH_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "MATIH_KAFKA_REQUEST_TIMEOUT_S": "0.5"}


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        (["dlq", "list"], "dlq list failed:"),
        (["dlq", "show", "0", "0"], "dlq show failed:"),
        (["dlq", "redrive"], "dlq redrive failed:"),
        (["lag", "--samples", "2", "--interval", "0.1"], "lag"),
        (["replay", "--from", "0", "--dry-run"], "replay failed:"),
    ],
)
def test_a_kafka_command_fails_in_one_line_when_kafka_is_down(
    command: list[str], prefix: str
) -> None:
    result = runner.invoke(app, command, env={**NOWHERE, "COLUMNS": "1000"})
    assert result.exit_code == 1
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    assert "Traceback" not in result.output
    if prefix != "lag":
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, result.output
        assert lines[0].startswith(prefix)
        assert "127.0.0.1:1" in lines[0]
        assert "is the broker running?" in lines[0]
