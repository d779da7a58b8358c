"""The gateway on a thread: a real uvicorn server, as ``matih-ingest api`` runs it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from ingest.api import ApiSettings, build_server


class GatewayThread:
    """Serves the gateway from a thread of its own until stopped."""

    def __init__(self, settings: ApiSettings) -> None:
        self._server = build_server(settings, embedded=True)
        self._thread = threading.Thread(target=self._server.run, name="gateway", daemon=True)
        self.url = ""

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)


@contextmanager
def serving(settings: ApiSettings) -> Iterator[httpx.Client]:
    """A gateway running with ``settings``, and an HTTP client of it."""
    server = GatewayThread(settings)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            yield client
    finally:
        server.stop()
