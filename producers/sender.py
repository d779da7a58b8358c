"""The background loop that moves buffered calls to Kafka.

It runs the async publisher on a thread of its own, so a training loop never waits
on the network. Every ``linger_ms`` it drains the buffer, packs the calls into
events and queues them; a record Kafka did not acknowledge is queued again (the
sink's writes are idempotent, so a resend cannot duplicate anything). It also
remembers, per run, the last acknowledged offset, so that a reader can wait until
the workers have written that far.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka.structs import RecordMetadata

from ingest.consistency import Position
from ingest.errors import KafkaUnavailableError
from ingest.events import EventEnvelope
from producers.buffer import EventBuffer, pack
from producers.errors import PublishError
from producers.publisher import EventPublisher
from producers.settings import ProducerSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

_RECONNECT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class DeliveryReport:
    """What a flush left undelivered (all zero when everything was acknowledged)."""

    buffered_calls: int
    unsent_events: int
    in_flight: int

    @property
    def complete(self) -> bool:
        """Whether every call and event was acknowledged by Kafka."""
        return not (self.buffered_calls or self.unsent_events or self.in_flight)


class BackgroundSender:
    """Drains an ``EventBuffer`` into Kafka from a daemon thread.

    Args:
        settings: Kafka location and batching.
        buffer: the buffer the logging calls append to.
    """

    def __init__(self, settings: ProducerSettings, buffer: EventBuffer) -> None:
        self._settings = settings
        self._buffer = buffer
        self._publisher = EventPublisher(settings)
        self._backlog: deque[EventEnvelope] = deque()
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()
        self._closing = False
        self._main_task: concurrent.futures.Future[None] | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="matih-ingest-sender", daemon=True)
        self.positions: dict[tuple[str, str], Position] = {}
        self.resent = 0

    def start(self) -> None:
        """Starts the thread; connecting to Kafka happens there, in the background."""
        self._thread.start()
        self._main_task = asyncio.run_coroutine_threadsafe(self._main(), self._loop)

    def flush(self, timeout: float) -> DeliveryReport:
        """Sends everything buffered and waits, at most ``timeout`` s, for Kafka's acks."""
        future = asyncio.run_coroutine_threadsafe(self._flush(timeout), self._loop)
        try:
            return future.result(timeout + 1.0)
        except TimeoutError:
            future.cancel()
            return self._report()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Runs ``coroutine`` on the sender's loop (safe from any thread, even one with a
        running loop of its own) and returns its result.

        Raises:
            TimeoutError: it did not finish within ``timeout`` seconds.
        """
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def close(self, timeout: float) -> DeliveryReport:
        """Flushes for at most ``timeout`` s, disconnects and stops the thread."""
        report = self.flush(timeout)
        self._closing = True
        self._loop.call_soon_threadsafe(self._wake.set)
        main = self._main_task
        if main is not None:
            try:
                main.result(timeout=5.0)
            except TimeoutError:
                main.cancel()  # still connecting to, or stopping against, a dead broker
                try:
                    main.result(timeout=2.0)
                except (TimeoutError, concurrent.futures.CancelledError):
                    pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self._loop.close()
        return report

    async def _main(self) -> None:
        try:
            await self._connect()
            linger = self._settings.linger_ms / 1000
            while not self._closing:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(linger, 0.001))
                except TimeoutError:
                    pass
                self._wake.clear()
                await self._send()
        finally:
            await self._publisher.stop(timeout=2.0)

    async def _connect(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._publisher.start()
                if attempt:
                    logger.info("connected to Kafka after %d attempts", attempt + 1)
                return
            except KafkaUnavailableError as exc:
                if attempt == 0:
                    logger.warning("%s; events are held in memory while retrying", exc)
                await asyncio.sleep(_RECONNECT_BACKOFF_S[min(attempt, len(_RECONNECT_BACKOFF_S) - 1)])
                attempt += 1

    async def _send(self) -> None:
        async with self._sending:  # the linger loop and a flush may both be here
            await self._send_backlog()

    async def _send_backlog(self) -> None:
        self._backlog.extend(pack(self._buffer.drain()))
        if not self._publisher.started:
            return
        while self._backlog:
            event = self._backlog[0]
            try:
                future = await self._publisher.publish(event)
            except PublishError as exc:
                logger.warning("%s; will retry", exc)
                return
            self._backlog.popleft()
            future.add_done_callback(functools.partial(self._settle, event))

    def _settle(self, event: EventEnvelope, future: asyncio.Future[RecordMetadata]) -> None:
        if future.cancelled() or future.exception() is not None:
            # Not acknowledged: send it again. Redelivery is harmless (idempotent sink).
            self.resent += 1
            self._backlog.appendleft(event)
            self._wake.set()
            return
        metadata = future.result()
        key = (event.tenant_id, event.run_id)
        previous = self.positions.get(key)
        if previous is None or metadata.offset > previous.offset or metadata.partition != previous.partition:
            self.positions[key] = Position(metadata.topic, metadata.partition, metadata.offset)

    async def _flush(self, timeout: float) -> DeliveryReport:
        deadline = time.monotonic() + timeout
        while True:
            await self._send()
            remaining = deadline - time.monotonic()
            if self._publisher.started:
                await self._publisher.flush(max(remaining, 0.0))
            report = self._report()
            if report.complete or time.monotonic() >= deadline:
                return report
            await asyncio.sleep(min(0.05, max(remaining, 0.0)))

    def _report(self) -> DeliveryReport:
        return DeliveryReport(
            buffered_calls=len(self._buffer),
            unsent_events=len(self._backlog),
            in_flight=self._publisher.stats.in_flight,
        )
