"""The worker's observability: ``/metrics`` over HTTP and a background lag sampler.

Hooked into the worker's start and stop by :func:`attach_metrics`; nothing runs when
``MetricsSettings.port`` is unset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream import FastStream

from consumers.lag import LagMonitor
from consumers.lag_watch import LagWatcher
from consumers.settings import ConsumerSettings
from consumers.telemetry import WorkerTelemetry
from ingest.errors import KafkaUnavailableError
from ingest.telemetry import MetricsServer, Readiness, serve_metrics
from ingest.topics import events_topic

__all__ = ["MetricsExporter", "attach_metrics"]

logger = logging.getLogger(__name__)


class MetricsExporter:
    """Serves a worker's metrics and samples its group's lag into them.

    Args:
        settings: the worker's settings (``metrics`` says where to serve, how often to sample).
        telemetry: the worker's telemetry.
    """

    def __init__(
        self,
        settings: ConsumerSettings,
        telemetry: WorkerTelemetry,
        readiness: Readiness | None = None,
    ) -> None:
        self._settings = settings
        self._readiness = readiness
        self.telemetry = telemetry
        self.server: MetricsServer | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._monitor: LagMonitor | None = None

    async def start(self) -> None:
        """Starts the HTTP server and the lag sampler."""
        config = self._settings.metrics
        if config.port is None:
            return
        self.server = serve_metrics(
            config.host, config.port, self.telemetry.registry, readiness=self._readiness
        )
        logger.info("metrics on http://%s:%d/metrics", config.host, self.server.port)
        self._stop.clear()
        self._task = asyncio.create_task(self._sample_lag())

    async def stop(self) -> None:
        """Stops both."""
        self._stop.set()
        if self._task is not None:
            # Cancelled if still waiting on Kafka: stopping the worker must not hang on it.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, self._settings.kafka.request_timeout_s)
            self._task = None
        if self.server is not None:
            self.server.close()
            self.server = None

    async def _sample_lag(self) -> None:
        """Samples until stopped; while Kafka cannot be reached the group status is ERR
        and connecting is tried again every interval."""
        kafka = self._settings.kafka
        interval = self._settings.metrics.lag_interval_s
        while not self._stop.is_set():
            monitor = LagMonitor(kafka)
            try:
                await monitor.start()
                # The events topic is named so that records the group has not committed
                # yet (its first batch, or no worker up) count as lag from the start.
                watcher = LagWatcher(monitor, kafka.consumer_group, topics=[events_topic(kafka)])
                await watcher.watch(interval, self.telemetry.observe_lag, self._stop)
            except KafkaUnavailableError as exc:
                logger.warning("no lag for /metrics yet: %s", exc)
                self.telemetry.lag_unreadable(kafka.consumer_group)
            finally:
                await monitor.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)


def attach_metrics(
    app: FastStream,
    settings: ConsumerSettings,
    telemetry: WorkerTelemetry,
    readiness: Readiness | None = None,
) -> MetricsExporter:
    """Starts the exporter (``/metrics``, ``/healthz``, ``/readyz``) after the worker
    starts and stops it before the worker stops."""
    exporter = MetricsExporter(settings, telemetry, readiness)
    app.after_startup(exporter.start)
    app.on_shutdown(exporter.stop)
    return exporter
