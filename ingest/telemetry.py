"""Prometheus exposition: the ``/metrics`` endpoint any deployable can serve.

Each deployable keeps its metrics in a registry of its own (not prometheus_client's
global one), so that several workers or a worker and a gateway can share a process,
as the tests do. The worker serves its registry on a small HTTP server of its own;
the gateway mounts :func:`metrics_asgi_app` under ``/metrics``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_asgi_app, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

Readiness = Callable[[], str | None]
"""None when ready, else the reason it is not (the body of a 503)."""

__all__ = ["MetricsServer", "metrics_asgi_app", "serve_metrics"]


class _Merged(Collector):
    """Several registries seen as one (a gateway exposes its own and the producer's)."""

    def __init__(self, registries: Iterable[CollectorRegistry]) -> None:
        self._registries = list(registries)

    def collect(self) -> Iterator[Any]:
        for registry in self._registries:
            yield from registry.collect()


def _collector(registries: tuple[CollectorRegistry, ...]) -> Collector:
    return registries[0] if len(registries) == 1 else _Merged(registries)


def metrics_asgi_app(*registries: CollectorRegistry) -> Any:
    """An ASGI app answering ``GET`` with the registries' metrics in Prometheus text form.

    Mount it in FastAPI with ``app.mount("/metrics", metrics_asgi_app(registry))``.
    """
    return make_asgi_app(_collector(registries))


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP server (a daemon thread)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port it listens on (useful when asked for port 0)."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stops serving and frees the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes and scrapes every few seconds: not worth a log line each."""


def _with_health(metrics: Any, readiness: Readiness | None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path not in ("/healthz", "/readyz"):
            return metrics(environ, start_response)
        problem = readiness() if path == "/readyz" and readiness is not None else None
        status = "200 OK" if problem is None else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [(problem or "ok").encode() + b"\n"]

    return app


def serve_metrics(
    host: str, port: int, *registries: CollectorRegistry, readiness: Readiness | None = None
) -> MetricsServer:
    """Serves the registries at ``http://host:port/metrics`` until closed, with
    ``/healthz`` (200 while the process serves) and ``/readyz`` (200 when ``readiness``
    says so, else 503 with the reason)."""
    app = _with_health(make_wsgi_app(_collector(registries)), readiness)
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return MetricsServer(server, thread)
