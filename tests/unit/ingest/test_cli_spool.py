"""``matih-ingest spool list|flush`` without a broker: what it shows, what it skips."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ingest.cli.main import app
from producers.spool.directory import EventSpool
from producers.spool.segment import SpoolEntry

runner = CliRunner()


def test_flush_skips_a_spool_whose_process_is_alive_and_leaves_it_intact(tmp_path: Path) -> None:
    live = EventSpool.create(tmp_path, 1_000_000, True, owner={"topic": "t.events"})
    live.append([SpoolEntry(b'{"not": "sent"}', 0)])
    try:
        listed = runner.invoke(
            app, ["spool", "list", "--spool-dir", str(tmp_path)], env={"COLUMNS": "300"}
        )
        assert listed.exit_code == 0
        assert "alive" in listed.output
        flushed = runner.invoke(
            app, ["spool", "flush", "--spool-dir", str(tmp_path), "-b", "127.0.0.1:1"]
        )
        assert flushed.exit_code == 1
        assert "is alive" in flushed.output
        assert live.events == 1
        assert any(live.path.glob("*.seg"))
    finally:
        live.close()


def test_list_says_so_when_there_is_no_spool(tmp_path: Path) -> None:
    result = runner.invoke(app, ["spool", "list", "--spool-dir", str(tmp_path / "none")])
    assert result.exit_code == 0
    assert "no spools" in result.output


def test_list_shows_that_a_spool_goes_to_the_tenant_topics(tmp_path: Path) -> None:
    owner = {"topic": "t.events", "tenant_topics": True}
    spool = EventSpool.create(tmp_path, 1_000_000, True, owner=owner)
    spool.append([SpoolEntry(b'{"not": "sent"}', 0)])
    spool.close()
    listed = runner.invoke(
        app, ["spool", "list", "--spool-dir", str(tmp_path)], env={"COLUMNS": "300"}
    )
    assert listed.exit_code == 0
    assert "t.events.tenant.<tenant>" in listed.output
