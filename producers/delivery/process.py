"""The sender in a process of its own: the training process only fills a shared ring.

A ``SenderProcess`` starts ``python -m producers.delivery.sidecar`` with three file
descriptors: the ring (``producers.delivery.ring``, in anonymous shared memory), a
control socket (this process asks, the sender process answers: flush, report,
positions, access checks, close), and an event socket (the sender process's log
records and metrics, replayed here on a listening thread, so they reach this
process's handlers and ``ProducerTelemetry`` as in the thread design).

Why a process: the sender's work (packing, encoding, the event loop, aiokafka) holds
Python's GIL and makes objects that Python's garbage collector must walk, and every
pause of either stops a training loop in the same process, up to hundreds of
microseconds at p99.9. In a process of its own it has its own GIL and collector; a
logging call only packs bytes into memory.

The sender process outlives a crash of this one: when the control socket closes
without a ``close``, it reads the ring to its end, delivers within
``flush_timeout_s`` and spools what is left, then exits. It runs in a session of its
own and ignores SIGINT and SIGTERM: a terminal's Ctrl-C or a signal to the trainer's
process group is for the trainer, and the sender process ends after it, never before.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import mmap
import os
import socket
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Connection
from typing import Any

from ingest.tracking.consistency import Position
from producers.delivery.report import DeliveryReport
from producers.delivery.ring import HEADER_BYTES, RingWriter, ring_capacity
from producers.settings import ProducerSettings
from producers.telemetry import ProducerTelemetry

logger = logging.getLogger(__name__)

LOGGERS = ("producers", "ingest", "aiokafka")
"""Loggers whose levels the sender process takes from this one at start."""
_REPLY_MARGIN_S = 5.0
"""Beyond a request's own bound, how long an answer may take (the sender process
starting up, on a busy machine) before it counts as gone."""


class SenderGoneError(RuntimeError):
    """The sender process ended, or does not answer."""


class SenderProcess:
    """Starts the sender process and talks to it; the training process's end.

    Args:
        settings: as for ``BackgroundSender``; the ring takes ``ring_capacity`` of
            ``memory_bytes``, the sender process's buffer the rest.
        metrics: updated from the sender process's counts, twice a second.
    """

    def __init__(
        self, settings: ProducerSettings, metrics: ProducerTelemetry | None = None
    ) -> None:
        self._metrics = metrics
        size = HEADER_BYTES + ring_capacity(settings.memory_bytes)
        fd = _shared_file(size)
        self._control, control_child = _socket_pair()
        self._events, events_child = _socket_pair()
        try:
            self._mmap = mmap.mmap(fd, size)
            self.ring = RingWriter(memoryview(self._mmap))
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "producers.delivery.sidecar",
                    *map(str, (fd, control_child, events_child)),
                ],
                pass_fds=(fd, control_child, events_child),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # the trainer's own output stays its own
                start_new_session=True,  # a terminal's Ctrl-C is for the trainer
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        except OSError:
            self._control.close()
            self._events.close()
            raise
        finally:
            for descriptor in (fd, control_child, events_child):
                os.close(descriptor)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._gone: str | None = None
        self._closing = False
        self._last = DeliveryReport(0, 0, 0)
        self._control.send(
            {
                "settings": settings,
                "levels": {name: logging.getLogger(name).getEffectiveLevel() for name in LOGGERS},
                "metrics": metrics is not None,
            }
        )
        self._listener = threading.Thread(
            target=self._listen, name="matih-ingest-sender-events", daemon=True
        )

    @property
    def pid(self) -> int:
        """The sender process's id."""
        return self._process.pid

    @property
    def positions(self) -> dict[tuple[str, str], Position]:
        """Per (tenant, run), the last offset Kafka acknowledged."""
        try:
            positions: dict[tuple[str, str], Position] = self._call("positions", (), 0)
        except SenderGoneError:
            return {}
        return positions

    def start(self) -> None:
        """Starts replaying the sender process's logs and metrics (it runs already)."""
        self._listener.start()

    def flush(self, timeout: float) -> DeliveryReport:
        """Sends everything logged so far and waits, at most ``timeout`` s, for Kafka's acks."""
        return self._report_call("flush", (timeout,), timeout)

    def check_write_access(self, tenant_id: str, timeout: float) -> None:
        """As ``BackgroundSender.check_write_access``; a gone sender raises ``TimeoutError``."""
        try:
            self._call("check_write_access", (tenant_id, timeout), timeout)
        except SenderGoneError as exc:
            raise TimeoutError(str(exc)) from None

    def wait_committed(self, position: Position, within_s: float, timeout: float) -> bool:
        """As ``BackgroundSender.wait_committed``; a gone sender raises ``TimeoutError``."""
        try:
            caught_up: bool = self._call("wait_committed", (position, within_s, timeout), timeout)
        except SenderGoneError as exc:
            raise TimeoutError(str(exc)) from None
        return caught_up

    def report(self) -> DeliveryReport:
        """What is not yet acknowledged right now (a snapshot: no flush, no wait)."""
        return self._report_call("report", (), 0)

    def close(self, timeout: float) -> DeliveryReport:
        """Flushes, spools what is left and ends the sender process, within ``timeout``
        s (plus a fraction of one); what it holds then stays in its spool."""
        self._closing = True
        report = self._report_call("close", (timeout,), timeout)
        try:
            self._process.wait(timeout=_REPLY_MARGIN_S)
        except subprocess.TimeoutExpired:
            logger.error("the sender process %d did not end; killing it", self._process.pid)
            self._process.kill()
            self._process.wait()
        self.ring.closed = "the tracker is closed"
        self._control.close()
        self._listener.join(timeout=1.0)
        return report

    def _report_call(self, name: str, args: tuple[Any, ...], timeout: float) -> DeliveryReport:
        """A request answered with a ``DeliveryReport``, to which the ring's part is added;
        when the sender process is gone, the last report it gave, and the ring's."""
        ring = self.ring
        if not ring.flush_waiting():
            logger.warning(
                "the SDK's ring is full: %d lifecycle events wait in memory for room",
                ring.pending_records,
            )
        with contextlib.suppress(SenderGoneError):
            self._last = self._call(name, args, timeout)
        last = self._last
        return DeliveryReport(
            buffered_calls=last.buffered_calls + ring.pending_records,
            unsent_events=last.unsent_events,
            in_flight=last.in_flight,
            spooled_events=last.spooled_events,
            spooled_points=last.spooled_points,
            spool_path=last.spool_path,
            dropped_points=last.dropped_points + ring.dropped_points,
            spilled_points=last.spilled_points,
            rejected_events=last.rejected_events + ring.rejected_events,
        )

    def _call(self, name: str, args: tuple[Any, ...], timeout: float) -> Any:
        """Asks the sender process; raises what it raised, or ``SenderGoneError``."""
        with self._lock:
            if self._gone is not None:
                raise SenderGoneError(self._gone)
            request = next(self._ids)
            try:
                self._control.send((request, name, args))
                while self._control.poll(timeout + _REPLY_MARGIN_S):
                    answer, ok, value = self._control.recv()
                    if answer == request:
                        if ok:
                            return value
                        raise value
                reason = f"the sender process {self.pid} did not answer in time"
            except (EOFError, OSError):
                reason = self._ended()
            self._gone = reason
        logger.error("%s: what it held is in its spool, if it spooled it", reason)
        raise SenderGoneError(reason)

    def _ended(self) -> str:
        try:
            code = self._process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return f"the sender process {self.pid} stopped answering"
        return f"the sender process {self.pid} ended (exit code {code})"

    def _listen(self) -> None:
        """Replays the sender process's log records and metrics, until it ends."""
        while True:
            try:
                kind, body = self._events.recv()
            except (EOFError, OSError):
                break
            if kind == "log":
                record = logging.makeLogRecord(body)
                target = logging.getLogger(record.name)
                if target.isEnabledFor(record.levelno):
                    target.handle(record)
            elif kind == "telemetry" and self._metrics is not None:
                self._apply(body)
        self._events.close()
        if not self._closing:
            self.ring.closed = "its sender process has ended"
            logger.error("%s: metric points logged from now on are dropped", self._ended())

    def _apply(self, counts: dict[str, Any]) -> None:
        metrics = self._metrics
        assert metrics is not None
        for kind, count in counts["sent"].items():
            metrics.sent(kind, count)
        for (kind, reason), count in counts["failed"].items():
            metrics.send_failed(kind, reason, count)
        if counts["spool"] is not None:
            metrics.spool_size(*counts["spool"])
        if counts["pressure"] is not None:
            memory, spilled, dropped = counts["pressure"]
            ring = self.ring
            metrics.back_pressure(memory + ring.size_bytes, spilled, dropped + ring.dropped_points)


def _shared_file(size: int) -> int:
    """A file descriptor of ``size`` bytes of memory another process can map: an
    anonymous memory file where the system has them (Linux), else an unlinked file."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("matih-ingest-ring")
    else:
        handle, path = tempfile.mkstemp(prefix="matih-ingest-ring-")
        os.unlink(path)
        fd = handle
    os.ftruncate(fd, size)
    return fd


def _socket_pair() -> tuple[Connection, int]:
    """A connection for this process and the other end's descriptor for the child."""
    mine, theirs = socket.socketpair()
    return Connection(mine.detach()), theirs.detach()
