"""The uvicorn internals the gateway relies on, in one place.

Checked against uvicorn ``CHECKED_VERSIONS``; ``tests/unit/test_compat.py``
exercises each one, so an upgrade that moves one fails there first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn

__all__ = ["CHECKED_VERSIONS", "EmbeddedServer"]

CHECKED_VERSIONS = (">=0.54", "<1")
"""The uvicorn releases this was read from and tested against."""


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT and SIGTERM to the program it runs in.

    uvicorn has no switch for it; ``Server.capture_signals`` (undocumented) is where
    ``serve()`` installs its handlers, so an empty one leaves the caller's in place.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Installs nothing: the embedding program handles signals."""
        yield
