"""``matih-ingest asyncapi``: write the AsyncAPI document of the topics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ingest.asyncapi import asyncapi_document
from ingest.cli.options import BootstrapOption, GroupOption, TopicOption, kafka_settings


def asyncapi(
    bootstrap_servers: BootstrapOption = None,
    topic: TopicOption = None,
    group: GroupOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file; stdout by default.")
    ] = None,
) -> None:
    """Print the AsyncAPI 3.0 document of the run events topics (JSON)."""
    document = asyncapi_document(kafka_settings(bootstrap_servers, topic, group))
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}", err=True)
