"""The sender process: ``python -m producers.delivery.sidecar RING CONTROL EVENTS``.

Started by ``producers.delivery.process.SenderProcess`` with the three descriptors it
names. It reads the ring into an ``EventBuffer`` every ``linger_ms`` on a thread of
its own, while the buffer is under a quarter of the memory bound (a sender that lags
leaves calls in the ring, which paces the trainer), delivers it with a
``BackgroundSender`` as the thread design does, answers the control socket's
requests (a flush reads the ring a share at a time until it has covered every call
made before it), and sends its log records and metrics back on the event socket.
When the control socket closes without a ``close`` (its trainer died), it reads the
ring to its end, delivers or spools it all, and exits.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import mmap
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from producers.delivery.buffer import EventBuffer
from producers.delivery.report import DeliveryReport
from producers.delivery.ring import HEADER_BYTES, RingReader, ring_capacity
from producers.delivery.sender import BackgroundSender, shutdown_reserve
from producers.settings import ProducerSettings

_TELEMETRY_EVERY_S = 0.5
_MIN_BUFFER_BYTES = 1024 * 1024
_READ_SHARE = 4
"""The ring is read while the buffer holds less than this fraction of the bound: a
sender lagging its trainer leaves calls in the ring, which paces the trainer, rather
than take them in and drop them at the bound."""


class Relay:
    """What goes back to the trainer on the event socket: log records, and the counts
    a ``ProducerTelemetry`` takes (summed, sent every half second)."""

    def __init__(self, events: Connection) -> None:
        self._events = events
        self._lock = threading.Lock()
        self._sent: Counter[str] = Counter()
        self._failed: Counter[tuple[str, str]] = Counter()
        self._spool: tuple[int, int] | None = None
        self._pressure: tuple[int, int, int] | None = None
        self._due = 0.0
        self.gone = False
        """The trainer stopped listening: records go to this process's stderr."""

    def send(self, kind: str, body: Any) -> None:
        with self._lock:
            if self.gone:
                return
            try:
                self._events.send((kind, body))
            except OSError:
                self.gone = True

    def sent(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self._sent[kind] += count

    def send_failed(self, kind: str, reason: str, count: int = 1) -> None:
        with self._lock:
            self._failed[kind, reason] += count

    def spool_size(self, events: int, size_bytes: int) -> None:
        self._spool = (events, size_bytes)

    def back_pressure(self, memory_bytes: int, spilled_points: int, dropped_points: int) -> None:
        self._pressure = (memory_bytes, spilled_points, dropped_points)

    def flush_counts(self, force: bool = False) -> None:
        """Sends the counts since the last time, at most every half second unless forced."""
        now = time.monotonic()
        if not force and now < self._due:
            return
        self._due = now + _TELEMETRY_EVERY_S
        with self._lock:
            counts = {
                "sent": dict(self._sent),
                "failed": dict(self._failed),
                "spool": self._spool,
                "pressure": self._pressure,
            }
            self._sent.clear()
            self._failed.clear()
        self.send("telemetry", counts)


class _Forward(logging.Handler):
    """Sends each record to the trainer, formatted; to stderr once the trainer is gone."""

    def __init__(self, relay: Relay) -> None:
        super().__init__()
        self._relay = relay
        self._fallback = logging.StreamHandler(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        if self._relay.gone:
            self._fallback.emit(record)
            return
        body = dict(record.__dict__)
        body.update(msg=record.getMessage(), args=None, exc_info=None)
        if record.exc_info:
            body["exc_text"] = "".join(traceback.format_exception(*record.exc_info))
        try:
            self._relay.send("log", body)
        except Exception:  # an attribute that does not pickle: the record is not lost
            self._fallback.emit(record)
            return
        if self._relay.gone:
            self._fallback.emit(record)


class Sidecar:
    """The sender process's main loop, over the descriptors its trainer passed."""

    def __init__(
        self, ring_fd: int, control: Connection, relay: Relay, init: dict[str, Any]
    ) -> None:
        given: ProducerSettings = init["settings"]
        capacity = ring_capacity(given.memory_bytes)
        # What the ring does not take of the bound is this process's: buffer, backlog
        # and records in flight share it as they do in the thread design.
        rest = max(given.memory_bytes - capacity, _MIN_BUFFER_BYTES)
        settings = given.model_copy(update={"memory_bytes": rest})
        self._mmap = mmap.mmap(ring_fd, HEADER_BYTES + capacity)
        self._buffer = EventBuffer(settings.memory_bytes)
        self._read_mark = settings.memory_bytes // _READ_SHARE
        self._reader = RingReader(memoryview(self._mmap), self._buffer)
        self._read_lock = threading.Lock()
        self._control = control
        self._relay = relay
        self._metrics = relay if init["metrics"] else None
        self._sender = BackgroundSender(settings, self._buffer, self._metrics)
        self._settings = settings
        self._stopped = threading.Event()

    def run(self) -> None:
        self._sender.start()
        reading = threading.Thread(target=self._read_loop, name="matih-ingest-ring", daemon=True)
        reading.start()
        while True:
            try:
                request, name, args = self._control.recv()
            except (EOFError, OSError):
                self._finish(None, self._settings.flush_timeout_s)  # the trainer is gone
                return
            self._read()
            if name == "close":
                self._finish(request, args[0])
                return
            try:
                value = getattr(self, f"_do_{name}")(*args)
            except Exception as exc:  # the trainer re-raises it
                self._answer(request, False, exc)
            else:
                self._answer(request, True, value)

    def _do_flush(self, timeout: float) -> DeliveryReport:
        """Sends what the trainer logged before it asked: the ring a buffer's share at
        a time, each share delivered (or spooled) before the next is read."""
        deadline = time.monotonic() + timeout
        while True:
            moved = self._read()
            report = self._sender.flush(max(deadline - time.monotonic(), 0.0))
            if not moved or time.monotonic() >= deadline:
                return report

    def _do_report(self) -> DeliveryReport:
        return self._sender.report()

    def _do_positions(self) -> dict[Any, Any]:
        return dict(self._sender.positions)

    def _do_check_write_access(self, tenant_id: str, timeout: float) -> None:
        self._sender.check_write_access(tenant_id, timeout)

    def _do_wait_committed(self, position: Any, within_s: float, timeout: float) -> bool:
        return self._sender.wait_committed(position, within_s, timeout)

    def _finish(self, request: int | None, timeout: float) -> None:
        """Delivers what the ring and the buffer hold within ``timeout``, spools the
        rest (the ring's too: a step at a time moves it to Kafka or the spool) and
        stops the sender."""
        self._stopped.set()
        deadline = time.monotonic() + timeout
        self._do_flush(max(timeout - shutdown_reserve(timeout), 0.0))
        while self._read():
            self._sender.flush(0.0)
        report = self._sender.close(max(deadline - time.monotonic(), 0.0))
        if self._metrics is not None:
            self._relay.flush_counts(force=True)
        if request is not None:
            self._answer(request, True, report)

    def _answer(self, request: int, ok: bool, value: Any) -> None:
        with contextlib.suppress(OSError):  # the trainer is gone: no one waits for it
            self._control.send((request, ok, value))

    def _read(self) -> int:
        """Reads the ring into the buffer while the buffer is under its mark; how many
        records it moved."""
        with self._read_lock:
            return self._reader.read(max(self._read_mark - self._buffer.size_bytes, 0))

    def _read_loop(self) -> None:
        every = max(self._settings.linger_ms / 1000, 0.001)
        while not self._stopped.wait(every):
            self._read()
            if self._metrics is not None:
                self._relay.flush_counts()


def main(argv: list[str]) -> None:
    # Ctrl-C and a group's SIGTERM are for the trainer: this process ends with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ring_fd, control_fd, events_fd = map(int, argv)
    control = Connection(control_fd)
    relay = Relay(Connection(events_fd))
    init = control.recv()
    root = logging.getLogger()
    root.addHandler(_Forward(relay))
    root.setLevel(min(init["levels"].values()))
    for name, level in init["levels"].items():
        logging.getLogger(name).setLevel(level)
    sidecar = Sidecar(ring_fd, control, relay, init)
    # What is loaded by now lives as long as the process: its collections skip it.
    gc.freeze()
    sidecar.run()


if __name__ == "__main__":
    main(sys.argv[1:])
