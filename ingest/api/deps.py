"""The objects routes need, from the application's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ingest.api.gateway import RunGateway


def _gateway(request: Request) -> RunGateway:
    gateway: RunGateway = request.app.state.gateway
    return gateway


Gateway = Annotated[RunGateway, Depends(_gateway)]
"""The running gateway: a route parameter of this type receives it."""
