"""The route each event takes out: straight to Kafka, or through the on-disk spool.

The ``EventRouter`` is the sender's state machine: it knows where every event is (in
memory, in flight to Kafka, or in the spool) and runs on the sender's event loop only
(one ``step`` at a time, under a lock). See ``producers.delivery.sender`` for the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka.structs import RecordMetadata

from ingest.errors import KafkaAccessDeniedError, KafkaUnavailableError
from ingest.events import EventEnvelope
from ingest.kafka.backoff import reconnect_delay
from ingest.tracking.consistency import Position
from producers.delivery.backlog import Backlog, shares
from producers.delivery.buffer import EventBuffer, Outgoing, item_bytes, pack
from producers.delivery.kafka import EventPublisher
from producers.delivery.recovery import spool_owner
from producers.delivery.unspool import SPOOL_WINDOW, send_spooled
from producers.errors import PublishError, SpoolError
from producers.settings import ProducerSettings
from producers.spool.directory import EventSpool, SpoolRecord, SpoolWriteError
from producers.spool.segment import HEADER_BYTES, SpoolEntry
from producers.telemetry import TelemetrySink

logger = logging.getLogger(__name__)

_PACK_TURN = 4096
"""Buffered calls packed at a time, before their memory is released to the buffer."""
_RECORD_OVERHEAD = 1024
"""Room left in ``max_request_bytes`` for the record's key, headers and batch framing."""


@dataclass(frozen=True, slots=True)
class Direct:
    """A record sent straight to Kafka and not yet acknowledged."""

    item: Outgoing
    sent_at: float
    copied: bool = False
    """A copy is at the head of the spool too (a spill began while it was in flight)."""


class EventRouter:
    """Moves events from the buffer to Kafka, through the spool when needed.

    Args:
        settings: Kafka location, timeouts and the spool.
        buffer: the in-memory buffer the logging calls fill.
        metrics: sent and failed records, and the spool's size, if wanted.
        publisher: the way to Kafka; an ``EventPublisher`` of ``settings`` by default
            (tests pass one whose acknowledgements they settle themselves).
        open_spool: makes this process's spool; ``EventSpool.create`` under
            ``settings.spool_dir`` by default (tests pass one whose disk fails).
    """

    def __init__(
        self,
        settings: ProducerSettings,
        buffer: EventBuffer,
        metrics: TelemetrySink | None = None,
        publisher: EventPublisher | None = None,
        open_spool: Callable[[ProducerSettings], EventSpool] | None = None,
    ) -> None:
        self._settings = settings
        self._buffer = buffer
        self._metrics = metrics
        self.publisher = publisher or EventPublisher(settings, metrics)
        self._open_spool = open_spool or _create_spool
        self._spill_mark, self._in_flight_max, backlog_max = shares(settings.memory_bytes)
        self.backlog = Backlog(backlog_max)
        self.in_flight_bytes = 0
        self._behind = False
        """The last step found the buffer past its mark: this sender lags the trainer."""
        self._copies = 0
        """Records at the spool's head that are copies of direct records in flight."""
        self.spool: EventSpool | None = None
        self.wake = asyncio.Event()
        self._acked = asyncio.Event()
        """Set when Kafka acknowledged a spooled record (room in a full spool)."""
        self.positions: dict[tuple[str, str], Position] = {}
        self.rejected = 0
        self._lock = asyncio.Lock()
        self._direct: dict[asyncio.Future[RecordMetadata], Direct] = {}
        self._spooled: dict[asyncio.Future[RecordMetadata], tuple[SpoolRecord, float]] = {}
        self._generation = 0
        self._failure: str | None = None
        self._unreachable = False
        """Kafka failed us (no connection, or no acks) and has not answered since."""
        self._connecting: asyncio.Task[None] | None = None
        self._next_connect = 0.0
        self._attempts = 0
        self._draining_since: float | None = None

    @property
    def behind(self) -> bool:
        """The last step found the buffer past its mark: the next one should not wait."""
        return self._behind

    @property
    def in_flight(self) -> int:
        """Records sent and not yet acknowledged."""
        return len(self._direct) + len(self._spooled)

    @property
    def connected(self) -> bool:
        """Connected, with the topics in place (the publisher starts only then)."""
        return self.publisher.started

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
        if self._metrics is None:
            return
        spool = self.spool
        if spool is not None:
            self._metrics.spool_size(spool.events, spool.size_bytes)
        self._metrics.back_pressure(
            self._buffer.size_bytes + self.backlog.size_bytes + self.in_flight_bytes,
            spool.written_points if spool is not None else 0,
            self.dropped_points,
        )

    @property
    def dropped_points(self) -> int:
        """Metric points dropped so far: by the buffer, the backlog and the spool."""
        spool = self.spool
        return (
            self._buffer.dropped_points
            + self.backlog.dropped_points
            + (spool.dropped_points if spool is not None else 0)
        )

    async def _route(self) -> None:
        if self._failure is None:
            self._check_overdue()
        if self._failure is not None:
            await self._outage(self._failure)
        await self._take_buffer()
        spooled = self.spool is not None and self.spool.events > 0
        if self._unreachable or spooled:
            await self._spool_backlog()
            if self.connected and not self._behind:
                # (While this sender lags the trainer, taking calls in comes first: it
                # spills them, which costs less than sending; the spool is sent after.)
                await self._drain_spool()
            return
        if not self.connected:
            return  # the first connection attempt is still running: wait in memory
        while self.backlog and self.connected and self._room(self.backlog.first().entry):
            item = self.backlog.first()
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
            self.in_flight_bytes += item.entry.size
            self._direct[future] = Direct(item, time.monotonic())
            future.add_done_callback(functools.partial(self._settle_direct, self._generation))

    async def _take_buffer(self) -> None:
        """Packs the buffer into the backlog. When memory is full (the backlog past its
        share, or the buffer past its mark: this sender lags the trainer), the backlog
        spills to the spool, oldest first, and newer events follow it there."""
        behind = self._behind = self._buffer.size_bytes > self._spill_mark
        # All of it at once (not more: a busy trainer would keep this step going). No
        # await until it is packed, so a cancelled step loses none of what it took.
        items = self._buffer.take()
        while items:
            chunk = [items.popleft() for _ in range(min(len(items), _PACK_TURN))]
            for outgoing in pack(chunk):
                if self._fits_a_request(outgoing):
                    self.backlog.append(outgoing)
            self._buffer.held_elsewhere = self.backlog.size_bytes + self.in_flight_bytes
            self._buffer.release(sum(map(item_bytes, chunk)))
        if self.backlog.full or (behind and self.backlog):
            try:
                await self._spill()
            except SpoolError as exc:
                logger.error("%s", exc)
                self.backlog.shed()
        self._buffer.held_elsewhere = self.backlog.size_bytes + self.in_flight_bytes

    async def _spill(self) -> None:
        copies: list[Outgoing] = []
        if self._direct and not (self.spool is not None and self.spool.events):
            # Copies of what is in flight go first: should Kafka fail one of them, the
            # spool already holds it ahead of the newer events spilled behind it.
            copies = [direct.item for direct in self._direct.values()]
            self.backlog.put_back(copies)
        try:
            await self._spool_backlog()
        finally:
            if copies:
                self._note_copies(copies)

    def _note_copies(self, copies: list[Outgoing]) -> None:
        """After a spill that began with copies of the records in flight: those written
        are marked (their acks make the copies redundant); those the disk refused leave
        the backlog again (they are in flight still)."""
        refused = {id(item) for item in self.backlog} & {id(item) for item in copies}
        if refused:
            kept = [item for item in self.backlog.take_all() if id(item) not in refused]
            self.backlog.put_back(kept)
        written = {id(item) for item in copies} - refused
        self._copies = len(written)
        for future, direct in self._direct.items():
            if id(direct.item) in written:
                self._direct[future] = Direct(direct.item, direct.sent_at, copied=True)

    def _room(self, entry: SpoolEntry) -> bool:
        """Whether ``entry`` may be sent now within the in-flight share of memory."""
        return not self.in_flight_bytes or self.in_flight_bytes + entry.size <= self._in_flight_max

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
        self.backlog.put_back(self._forget_in_flight())
        for outgoing in pack(self._buffer.drain()):
            if self._fits_a_request(outgoing):
                self.backlog.append(outgoing)
        try:
            await self._spool_backlog(wait=False)
        except SpoolError as exc:
            logger.error("%s", exc)
        await self.publisher.abort(min(0.5, max(deadline - time.monotonic(), 0.05)))
        if self.spool is not None:
            self.spool.close()

    def _fits_a_request(self, outgoing: Outgoing) -> bool:
        size = len(outgoing.entry.value)
        limit = self._settings.max_request_bytes - _RECORD_OVERHEAD
        if size > limit:
            # Kafka would refuse it for good; resending it forever would block its run.
            self.rejected += 1
            logger.error(
                "dropped a %s event of run %s: %d bytes encoded, over the %d that"
                " max_request_bytes allows; log fewer or shorter values per call",
                outgoing.event.kind,
                outgoing.event.run_id,
                size,
                limit,
            )
            return False
        return True

    def _forget_in_flight(self) -> list[Outgoing]:
        """Drops every record in flight; returns those the spool does not hold, oldest
        first, to be spooled again."""
        unacked = [direct.item for direct in self._direct.values() if not direct.copied]
        if any(direct.copied for direct in self._direct.values()):
            self._copies = 0  # the copies at the spool's head are needed now: send them
        self._direct.clear()
        self._spooled.clear()
        self.in_flight_bytes = 0
        return unacked

    def _ensure_spool(self) -> EventSpool:
        if self.spool is None:
            try:
                self.spool = self._open_spool(self._settings)
            except OSError as exc:
                raise SpoolError(
                    f"could not create a spool under {self._settings.spool_dir}: {exc}"
                ) from exc
            logger.warning(
                "Kafka at %s is %s: events are spooled to %s until it takes them",
                self._settings.kafka.bootstrap_servers,
                "out of reach" if self._unreachable or not self.connected else "not keeping up",
                self.spool.path,
            )
        return self.spool

    async def _spool_backlog(self, wait: bool = True) -> None:
        """Writes the whole backlog to the spool: one write from this loop's thread.

        Not on a worker thread: each hand-off to one and back releases Python's GIL
        twice, and a thread that gives it up waits for a training loop that never
        sleeps to hand it back (up to the 5 ms switch interval), while the trainer logs
        thousands of points. A full spool is waited on here (``wait``), asynchronously,
        so that acks free room meanwhile.
        """
        if not self.backlog:
            return
        spool = self._ensure_spool()
        deadline = time.monotonic() + self._settings.spool_full_wait_s
        while wait and not spool.has_room(self.backlog.size_bytes):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._acked.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked.wait(), left)
        # Taken and written with no await between: a cancelled step loses nothing.
        self._append(spool, self.backlog.take_all())
        if self._draining_since is None and self.connected:
            self._draining_since = time.monotonic()

    def _append(self, spool: EventSpool, batch: list[Outgoing]) -> None:
        try:
            spool.append([item.entry for item in batch])
        except SpoolWriteError as exc:
            self._put_back_unwritten(batch, exc)

    def _put_back_unwritten(self, batch: list[Outgoing], exc: SpoolWriteError) -> None:
        unwritten = {id(entry) for entry in exc.unwritten}
        self.backlog.put_back([item for item in batch if id(item.entry) in unwritten])
        path = self.spool.path if self.spool is not None else self._settings.spool_dir
        raise SpoolError(f"could not write the spool {path}: {exc}") from exc

    async def _drain_spool(self) -> None:
        spool = self.spool
        assert spool is not None
        if self._draining_since is None:
            self._draining_since = time.monotonic()
        if self._direct:
            return  # what went straight to Kafka is older than the spool: it goes first
        if self._copies:
            # Every record they copy was acknowledged (a failure would have reset this).
            for record in spool.read(self._copies):
                spool.ack(record)
            self._copies = 0
        budget = time.monotonic() + max(self._settings.linger_ms / 1000, 0.005)
        while self.connected and self._failure is None and len(self._spooled) < SPOOL_WINDOW:
            if time.monotonic() > budget or self._buffer.size_bytes > self._spill_mark:
                # The trainer's calls come first: take them in, then go on at once.
                self.wake.set()
                return
            batch = await send_spooled(
                spool,
                self.publisher,
                min(256, SPOOL_WINDOW - len(self._spooled)),
                idle=not self._spooled,
                admit=lambda record: self._room(SpoolEntry(record.value, record.points)),
            )
            self.rejected += batch.rejected
            for future, event, record in batch.sent:
                self.in_flight_bytes += len(record.value) + HEADER_BYTES
                self._spooled[future] = (record, time.monotonic())
                future.add_done_callback(
                    functools.partial(self._settle_spooled, self._generation, event, record)
                )
            if batch.error is not None:
                await self._outage(str(batch.error))
                return
            if not batch.sent:
                return

    def _check_overdue(self) -> None:
        limit = self._settings.delivery_timeout_s
        now = time.monotonic()
        oldest = []
        if self._direct:
            oldest.append(next(iter(self._direct.values())).sent_at)
        if self._spooled:
            oldest.append(next(iter(self._spooled.values()))[1])
        if any(now - sent_at > limit + 0.5 for sent_at in oldest):
            self._failure = f"a record waited over {limit:g}s for Kafka's acknowledgement"

    async def _outage(self, reason: str) -> None:
        """Kafka stopped acknowledging: spool everything unacked, drop the connection."""
        self._failure = None
        self._generation += 1
        self.backlog.put_back(self._forget_in_flight())
        if self.spool is not None:
            self.spool.rewind()
        logger.warning(
            "Kafka at %s stopped acknowledging (%s): %d unacknowledged events go to the spool;"
            " reconnecting",
            self._settings.kafka.bootstrap_servers,
            reason,
            len(self.backlog) + (self.spool.events if self.spool is not None else 0),
        )
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

    def _settle_direct(self, generation: int, future: asyncio.Future[RecordMetadata]) -> None:
        direct = self._direct.get(future)
        if direct is None:
            return  # an outage took it over (to the spool) meanwhile
        if not future.cancelled() and future.exception() is None:
            del self._direct[future]
            self.in_flight_bytes -= direct.item.entry.size
            self._record_position(direct.item.event, future.result())
        elif generation == self._generation:
            # Left in ``_direct``: the outage this starts spools it with the other unacked
            # records. (Popping it here lost it: the outage collects only what is left.)
            self._failure = f"Kafka failed a {direct.item.event.kind} record ({_why(future)})"
            self.wake.set()

    def _settle_spooled(
        self,
        generation: int,
        event: EventEnvelope,
        record: SpoolRecord,
        future: asyncio.Future[RecordMetadata],
    ) -> None:
        if self._spooled.pop(future, None) is not None:
            self.in_flight_bytes -= len(record.value) + HEADER_BYTES
        spool = self.spool
        if not future.cancelled() and future.exception() is None:
            self._record_position(event, future.result())
            if spool is not None:
                spool.ack(record)
                self._acked.set()
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


def _create_spool(settings: ProducerSettings) -> EventSpool:
    return EventSpool.create(
        settings.spool_dir,
        settings.spool_max_bytes,
        settings.spool_fsync,
        owner=spool_owner(settings),
    )
