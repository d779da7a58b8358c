"""The route each event takes out: straight to Kafka, or through the on-disk spool.

The ``EventRouter`` is the sender's state machine: it knows where every event is (in
memory, in flight to Kafka, or in the spool) and runs on the sender's event loop only
(one ``step`` at a time, under a lock). See ``producers.delivery.sender`` for the policy.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from dataclasses import dataclass

from aiokafka.structs import RecordMetadata

from ingest import codec
from ingest.errors import InvalidEventError, KafkaAccessDeniedError, KafkaUnavailableError
from ingest.events import EventEnvelope, MetricsLogged
from ingest.kafka.backoff import reconnect_delay
from ingest.tracking.consistency import Position
from producers.delivery.buffer import EventBuffer, pack
from producers.delivery.kafka import EventPublisher
from producers.errors import PublishError, SpoolError
from producers.settings import ProducerSettings
from producers.spool.directory import EventSpool, SpoolRecord, event_head
from producers.spool.segment import SpoolEntry
from producers.telemetry import ProducerMetrics

logger = logging.getLogger(__name__)

_SPOOL_WINDOW = 2000
"""Spooled records in flight at once while the spool drains."""
_MAX_BACKLOG = 10_000
"""Encoded events held in memory when even the spool cannot take them."""
_RECORD_OVERHEAD = 1024
"""Room left in ``max_request_bytes`` for the record's key, headers and batch framing."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event and its encoding."""

    event: EventEnvelope
    entry: SpoolEntry


class EventRouter:
    """Moves events from the buffer to Kafka, through the spool when needed.

    Args:
        settings: Kafka location, timeouts and the spool.
        buffer: the in-memory buffer the logging calls fill.
        metrics: sent and failed records, and the spool's size, if wanted.
    """

    def __init__(
        self,
        settings: ProducerSettings,
        buffer: EventBuffer,
        metrics: ProducerMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._buffer = buffer
        self._metrics = metrics
        self.publisher = EventPublisher(settings, metrics)
        self.backlog: deque[Outgoing] = deque()
        self.spool: EventSpool | None = None
        self.wake = asyncio.Event()
        self.positions: dict[tuple[str, str], Position] = {}
        self.resent = 0
        self.rejected = 0
        self._lock = asyncio.Lock()
        self._direct: dict[asyncio.Future[RecordMetadata], tuple[Outgoing, float]] = {}
        self._spooled: dict[asyncio.Future[RecordMetadata], tuple[SpoolRecord, float]] = {}
        self._generation = 0
        self._failure: str | None = None
        self._ready = False
        self._unreachable = False
        """Kafka failed us (no connection, or no acks) and has not answered since."""
        self._connecting: asyncio.Task[None] | None = None
        self._next_connect = 0.0
        self._attempts = 0
        self._draining_since: float | None = None

    @property
    def in_flight(self) -> int:
        """Records sent and not yet acknowledged."""
        return len(self._direct) + len(self._spooled)

    @property
    def connected(self) -> bool:
        """Connected, with the topics in place."""
        return self._ready and self.publisher.started

    def maybe_connect(self) -> None:
        """Starts a connection attempt if none runs and the backoff has passed."""
        if self.connected or time.monotonic() < self._next_connect:
            return
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._connect_once())

    def fail(self, reason: str) -> None:
        """Treats the connection as broken: the next step spools what is unacked."""
        self._failure = reason
        self.wake.set()

    async def step(self) -> None:
        """Takes the buffer, then publishes directly or through the spool."""
        async with self._lock:
            await self._route()
        if self._metrics is not None and self.spool is not None:
            self._metrics.spool_size(self.spool.events, self.spool.size_bytes)

    async def _route(self) -> None:
        if self._failure is None:
            self._check_overdue()
        if self._failure is not None:
            await self._outage(self._failure)
        if len(self.backlog) < _MAX_BACKLOG:
            for event in pack(self._buffer.drain()):
                outgoing = self._encode(event)
                if outgoing is not None:
                    self.backlog.append(outgoing)
        spooled = self.spool is not None and self.spool.events > 0
        if self._unreachable or spooled:
            await self._spool_backlog()
            if self.connected:
                await self._drain_spool()
            return
        if not self.connected:
            return  # the first connection attempt is still running: wait in memory
        while self.backlog and self.connected:
            item = self.backlog[0]
            try:
                future = await self.publisher.publish(item.event, item.entry.value)
            except PublishError as exc:
                await self._outage(str(exc))
                return
            except KafkaAccessDeniedError as exc:
                # Refused for good (a right taken away mid-run): spooling it would hold
                # it forever; the trainer was told at start_run when it was refused then.
                self.backlog.popleft()
                self.rejected += 1
                logger.error("dropped a %s event: %s", getattr(item.event, "kind", "?"), exc)
                continue
            self.backlog.popleft()
            self._direct[future] = (item, time.monotonic())
            future.add_done_callback(functools.partial(self._settle_direct, self._generation, item))

    async def shutdown(self, within_s: float) -> None:
        """Spools everything unacknowledged, disconnects, and releases the spool."""
        deadline = time.monotonic() + within_s
        if self._connecting is not None:
            self._connecting.cancel()
        try:
            await asyncio.wait_for(self._lock.acquire(), max(within_s / 2, 0.05))
        except TimeoutError:
            logger.warning("the sender was busy at shutdown; spooling what it holds anyway")
        self._generation += 1
        self.backlog.extendleft(reversed([item for item, _ in self._direct.values()]))
        self._direct.clear()
        self._spooled.clear()
        for event in pack(self._buffer.drain()):
            outgoing = self._encode(event)
            if outgoing is not None:
                self.backlog.append(outgoing)
        try:
            await self._spool_backlog(wait=False)
        except SpoolError as exc:
            logger.error("%s", exc)
        await self.publisher.abort(min(0.5, max(deadline - time.monotonic(), 0.05)))
        if self.spool is not None:
            self.spool.close()

    def _encode(self, event: EventEnvelope) -> Outgoing | None:
        value = codec.encode(event)
        limit = self._settings.max_request_bytes - _RECORD_OVERHEAD
        if len(value) > limit:
            # Kafka would refuse it for good; resending it forever would block its run.
            self.rejected += 1
            logger.error(
                "dropped a %s event of run %s: %d bytes encoded, over the %d that"
                " max_request_bytes allows; log fewer or shorter values per call",
                getattr(event, "kind", "?"),
                event.run_id,
                len(value),
                limit,
            )
            return None
        points = len(event.metrics) if isinstance(event, MetricsLogged) else 0
        return Outgoing(event, SpoolEntry(value, points))

    def _ensure_spool(self) -> EventSpool:
        if self.spool is None:
            settings = self._settings
            try:
                self.spool = EventSpool.create(
                    settings.spool_dir,
                    settings.spool_max_bytes,
                    settings.spool_full_wait_s,
                    settings.spool_fsync,
                    owner={
                        "bootstrap_servers": settings.kafka.bootstrap_servers,
                        "topic": settings.kafka.topic,
                        "key_strategy": settings.kafka.key_strategy.value,
                    },
                )
            except OSError as exc:
                raise SpoolError(
                    f"could not create a spool under {settings.spool_dir}: {exc}"
                ) from exc
            logger.warning(
                "Kafka at %s is out of reach: events are spooled to %s until it is back",
                settings.kafka.bootstrap_servers,
                self.spool.path,
            )
        return self.spool

    async def _spool_backlog(self, wait: bool = True) -> None:
        if not self.backlog:
            return
        spool = self._ensure_spool()
        batch = list(self.backlog)
        # Taken out first: if this task is cancelled, the thread still writes them.
        self.backlog.clear()
        entries = [item.entry for item in batch]
        try:
            if wait:
                # On a worker thread, so that acks (on this loop) can free room meanwhile.
                await asyncio.to_thread(spool.append, entries, wait)
            else:
                spool.append(entries, wait)
        except RuntimeError:  # no new threads at interpreter exit: write from here
            self._append_or_restore(spool, batch)
        except OSError as exc:
            self.backlog.extendleft(reversed(batch))
            raise SpoolError(f"could not write the spool {spool.path}: {exc}") from exc
        if self._draining_since is None and self.connected:
            self._draining_since = time.monotonic()

    def _append_or_restore(self, spool: EventSpool, batch: list[Outgoing]) -> None:
        try:
            spool.append([item.entry for item in batch], wait=False)
        except OSError as exc:
            self.backlog.extendleft(reversed(batch))
            raise SpoolError(f"could not write the spool {spool.path}: {exc}") from exc

    async def _drain_spool(self) -> None:
        spool = self.spool
        assert spool is not None
        if self._draining_since is None:
            self._draining_since = time.monotonic()
        while self.connected and self._failure is None and len(self._spooled) < _SPOOL_WINDOW:
            records = spool.read(min(256, _SPOOL_WINDOW - len(self._spooled)))
            if not records and not self._spooled and spool.events:
                # Read before but neither in flight nor acked (a send was interrupted):
                # read again from the oldest; acked records are skipped.
                spool.rewind()
                records = spool.read(min(256, _SPOOL_WINDOW))
            if not records:
                return
            for record in records:
                try:
                    event = event_head(record.value)
                except InvalidEventError as exc:
                    self.rejected += 1
                    logger.error("dropped an unreadable spool record in %s: %s", spool.path, exc)
                    spool.ack(record)
                    continue
                try:
                    future = await self.publisher.publish(event, record.value)
                except PublishError as exc:
                    await self._outage(str(exc))
                    return
                self._spooled[future] = (record, time.monotonic())
                future.add_done_callback(
                    functools.partial(self._settle_spooled, self._generation, event, record)
                )

    def _check_overdue(self) -> None:
        limit = self._settings.delivery_timeout_s
        now = time.monotonic()
        for pending in (self._direct, self._spooled):
            if pending:
                _, sent_at = next(iter(pending.values()))
                if now - sent_at > limit + 0.5:
                    self._failure = f"a record waited over {limit:g}s for Kafka's acknowledgement"

    async def _outage(self, reason: str) -> None:
        """Kafka stopped acknowledging: spool everything unacked, drop the connection."""
        self._failure = None
        self._generation += 1
        unacked = [item for item, _ in self._direct.values()]
        self.resent += len(unacked) + len(self._spooled)
        self._direct.clear()
        self._spooled.clear()
        self.backlog.extendleft(reversed(unacked))
        if self.spool is not None:
            self.spool.rewind()
        logger.warning(
            "Kafka at %s stopped acknowledging (%s): %d unacknowledged events go to the spool;"
            " reconnecting",
            self._settings.kafka.bootstrap_servers,
            reason,
            len(self.backlog) + (self.spool.events if self.spool is not None else 0),
        )
        self._ready = False
        self._unreachable = True
        self._draining_since = None
        await self.publisher.abort(1.0)
        self._attempts = 1
        self._next_connect = time.monotonic() + reconnect_delay(0)
        await self._spool_backlog()

    async def _connect_once(self) -> None:
        settings = self._settings
        try:
            await self.publisher.start()  # creates missing topics too
        except KafkaUnavailableError as exc:
            self._unreachable = True
            await self.publisher.abort(0.5)
            if self._attempts == 0:
                logger.warning("%s; events wait in a spool under %s", exc, settings.spool_dir)
            self._next_connect = time.monotonic() + reconnect_delay(self._attempts)
            self._attempts += 1
            return
        except KafkaAccessDeniedError as exc:
            # Never spooled: the tracker refused the run already (``start_run``); what
            # waits in memory is bounded by the buffer, and a fixed credential may come.
            await self.publisher.abort(0.5)
            if self._attempts == 0:
                logger.error("%s", exc)
            self._next_connect = time.monotonic() + reconnect_delay(self._attempts)
            self._attempts += 1
            return
        self._ready = True
        self._unreachable = False
        if self._attempts:
            logger.info(
                "connected to Kafka at %s after %d attempts; %d events wait in the spool",
                settings.kafka.bootstrap_servers,
                self._attempts + 1,
                self.spool.events if self.spool is not None else 0,
            )
        self._attempts = 0
        self.wake.set()

    def _settle_direct(
        self, generation: int, item: Outgoing, future: asyncio.Future[RecordMetadata]
    ) -> None:
        if not future.cancelled() and future.exception() is None:
            self._direct.pop(future, None)
            self._record_position(item.event, future.result())
        elif generation == self._generation:
            # Left in ``_direct``: the outage this starts spools it with the other unacked
            # records. (Popping it here lost it: the outage collects only what is left.)
            kind = getattr(item.event, "kind", "?")
            self._failure = f"Kafka failed a {kind} record ({_why(future)})"
            self.wake.set()

    def _settle_spooled(
        self,
        generation: int,
        event: EventEnvelope,
        record: SpoolRecord,
        future: asyncio.Future[RecordMetadata],
    ) -> None:
        self._spooled.pop(future, None)
        spool = self.spool
        if not future.cancelled() and future.exception() is None:
            self._record_position(event, future.result())
            if spool is not None:
                spool.ack(record)
                if spool.events == 0 and self._draining_since is not None:
                    logger.info(
                        "the spool %s is delivered (%.1fs after Kafka was back)",
                        spool.path,
                        time.monotonic() - self._draining_since,
                    )
                    self._draining_since = None
        elif generation == self._generation:
            self._failure = f"Kafka failed a spooled record ({_why(future)})"
            self.wake.set()

    def _record_position(self, event: EventEnvelope, metadata: RecordMetadata) -> None:
        key = (event.tenant_id, event.run_id)
        previous = self.positions.get(key)
        if (
            previous is None
            or metadata.offset > previous.offset
            or metadata.partition != previous.partition
        ):
            self.positions[key] = Position(metadata.topic, metadata.partition, metadata.offset)


def _why(future: asyncio.Future[RecordMetadata]) -> str:
    return "cancelled" if future.cancelled() else repr(future.exception())
