"""The background loop that moves buffered calls to Kafka, or to the spool.

It runs the async publisher on a thread of its own, so a training loop never waits
on the network or the disk. Every ``linger_ms`` (at once while it lags the trainer) it
takes the whole buffer, packs the calls into events and encodes them, then:

- **Kafka reachable, spool empty, memory not full**: publishes them directly, as
  many at once as the memory bound's in-flight share allows.
- **Memory full** (``producers.delivery.backlog``: Kafka or this sender lags the
  trainer): spills the oldest pending records to the on-disk spool
  (``producers.spool``), copies of those in flight first.
- **Kafka out of reach, or the spool not empty**: appends them to the spool too,
  and, while connected (and not lagging the trainer), publishes the spool oldest
  first, so each run's order is kept. A spooled record leaves the spool only once
  acked.

An outage is noticed when a record cannot even be queued, when Kafka fails one, or
when one waits longer than ``delivery_timeout_s`` for its ack (aiokafka's
idempotent producer would otherwise retry forever). Then every unacknowledged event
goes to the spool, the connection is dropped (a fresh producer after the outage
carries no stale sequence state) and the sender reconnects with backoff. Resends are
harmless: events keep their ids, values and client timestamps, and the sink is
idempotent. It also remembers, per run, the last acknowledged offset, so that a
reader can wait until the workers have written that far.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from ingest.kafka.admin import check_write_access
from ingest.tracking.consistency import Position, wait_committed
from producers.delivery.buffer import EventBuffer
from producers.delivery.report import DeliveryReport
from producers.delivery.router import EventRouter
from producers.errors import SpoolError
from producers.settings import ProducerSettings
from producers.telemetry import TelemetrySink

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SHUTDOWN_RESERVE_S = 1.0


def shutdown_reserve(timeout: float) -> float:
    """Of a close's ``timeout``, what is kept for spooling the rest and disconnecting."""
    return min(_SHUTDOWN_RESERVE_S, timeout / 4)


class BackgroundSender:
    """Drains an ``EventBuffer`` into Kafka (or the spool) from a daemon thread.

    Args:
        settings: Kafka location, batching and the spool.
        buffer: the buffer the logging calls append to.
        metrics: sent and failed records and the spool's size, if wanted.
    """

    def __init__(
        self,
        settings: ProducerSettings,
        buffer: EventBuffer,
        metrics: TelemetrySink | None = None,
    ) -> None:
        self._settings = settings
        self._buffer = buffer
        self._loop = asyncio.new_event_loop()
        self._router = EventRouter(settings, buffer, metrics)
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="matih-ingest-sender", daemon=True
        )

    @property
    def positions(self) -> dict[tuple[str, str], Position]:
        """Per (tenant, run), the last offset Kafka acknowledged."""
        return self._router.positions

    def start(self) -> None:
        """Starts the thread; connecting to Kafka happens there, in the background."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_main(), self._loop).result(5.0)

    def flush(self, timeout: float) -> DeliveryReport:
        """Sends everything buffered and waits, at most ``timeout`` s, for Kafka's acks."""
        future = asyncio.run_coroutine_threadsafe(self._flush(timeout), self._loop)
        try:
            return future.result(timeout + 0.5)
        except TimeoutError:
            future.cancel()
            return self.report()

    def check_write_access(self, tenant_id: str, timeout: float) -> None:
        """Whether this client may write ``tenant_id``'s events (``ingest.kafka.admin``).

        Raises:
            KafkaAccessDeniedError: it may not.
            KafkaUnavailableError: Kafka did not answer.
            TimeoutError: no answer within ``timeout`` seconds.
        """
        self._call(check_write_access(self._settings.kafka, tenant_id), timeout)

    def wait_committed(self, position: Position, within_s: float, timeout: float) -> bool:
        """Waits, at most ``within_s``, until the workers have committed past ``position``;
        whether they have (``ingest.tracking.consistency``).

        Raises:
            KafkaUnavailableError: Kafka did not answer.
            TimeoutError: no answer within ``timeout`` seconds.
        """
        return self._call(wait_committed(self._settings.kafka, [position], within_s), timeout)

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Runs ``coroutine`` on the sender's loop (safe from any thread, even one with a
        running loop of its own) and returns its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def close(self, timeout: float) -> DeliveryReport:
        """Flushes, then spools what is left, disconnects and stops the thread; returns
        within ``timeout`` s (plus at most about half a second on an overloaded machine).

        What Kafka has not acknowledged by then stays in the spool (see the report).
        """
        deadline = time.monotonic() + timeout
        reserve = shutdown_reserve(timeout)
        report = self.flush(max(timeout - reserve, 0.0))
        self._closing = True
        future = asyncio.run_coroutine_threadsafe(self._shutdown(deadline), self._loop)
        try:
            report = future.result(max(deadline - time.monotonic(), 0.0) + 0.5)
        except (TimeoutError, concurrent.futures.CancelledError):
            future.cancel()
            logger.error("the sender did not shut down in time; reporting what it held")
            report = self.report()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=0.2)
        if not self._thread.is_alive():
            self._loop.close()
        return report

    async def _start_main(self) -> None:
        self._task = asyncio.create_task(self._main())

    async def _main(self) -> None:
        linger = max(self._settings.linger_ms / 1000, 0.001)
        router = self._router
        loop = asyncio.get_running_loop()
        while not self._closing:
            # Each turn of the event loop releases Python's GIL (in its poll), and a thread
            # that gives it up waits for a training loop that never sleeps to hand it back
            # (up to the 5 ms switch interval): a step waits with one timer, not
            # ``wait_for``'s task and cancellation (six turns), and not at all while the
            # sender lags the trainer (one turn, for acks and the connection).
            if router.behind or router.wake.is_set():
                await asyncio.sleep(0)
            else:
                timer = loop.call_later(linger, router.wake.set)
                await router.wake.wait()
                timer.cancel()
            router.wake.clear()
            router.maybe_connect()
            try:
                await router.step()
            except SpoolError as exc:  # the disk refused; events stay in memory, bounded
                logger.error("%s", exc)
                await asyncio.sleep(1.0)
            except Exception:  # the loop must outlive any surprise, or nothing is sent again
                logger.exception("the sender's step failed; retrying")
                router.fail("the sender's step failed")
                await asyncio.sleep(0.5)

    async def _flush(self, within_s: float) -> DeliveryReport:
        deadline = time.monotonic() + within_s
        router = self._router
        while True:
            router.maybe_connect()
            try:
                await router.step()
            except SpoolError as exc:
                logger.error("%s", exc)
            report = self.report()
            remaining = deadline - time.monotonic()
            if report.complete or remaining <= 0:
                return report
            await asyncio.sleep(min(0.02, remaining))

    async def _shutdown(self, deadline: float) -> DeliveryReport:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=0.2)
        await self._router.shutdown(max(deadline - time.monotonic(), 0.1))
        report = self.report()
        # Whatever still runs (a connection attempt, a flush given up on) ends with the loop.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for other in others:
            other.cancel()
        if others:
            await asyncio.wait(others, timeout=min(0.2, max(deadline - time.monotonic(), 0.01)))
        return report

    def report(self) -> DeliveryReport:
        """What is not yet acknowledged right now (a snapshot: no flush, no wait)."""
        router = self._router
        spool = router.spool
        return DeliveryReport(
            buffered_calls=len(self._buffer),
            unsent_events=len(router.backlog),
            in_flight=router.in_flight,
            spooled_events=spool.events if spool is not None else 0,
            spooled_points=spool.points if spool is not None else 0,
            spool_path=str(spool.path) if spool is not None else None,
            dropped_points=router.dropped_points,
            spilled_points=spool.written_points if spool is not None else 0,
            rejected_events=router.rejected,
        )
