"""Ids chosen by the producer: run ids, time-ordered (UUIDv7), so they also carry the start
time; and event ids, random (UUIDv4)."""

from __future__ import annotations

import os
import random
import re
import time
import uuid

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_VERSION_7 = 7


def new_run_id(now_ms: int | None = None) -> str:
    """Returns a new run id: a UUIDv7 (RFC 9562) as 32 lowercase hex digits.

    Args:
        now_ms: the creation time in Unix milliseconds; now by default.
    """
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | _VERSION_7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & 0x3FFF_FFFF_FFFF_FFFF
    return uuid.UUID(int=value).hex


_EVENT_ID_BITS = random.Random()
"""The event ids' own generator, seeded from the OS: a training script that seeds or draws
from the global ``random`` (for reproducible runs) neither repeats the SDK's event ids nor
has its own sequence disturbed by them."""
os.register_at_fork(after_in_child=_EVENT_ID_BITS.seed)  # a forked child draws anew


def new_event_id() -> uuid.UUID:
    """Returns a new event id: a random UUID (version 4).

    Its bits come from a ``random.Random`` of its own (seeded from the OS at start, and
    again in a forked child), not from ``os.urandom`` as ``uuid.uuid4``'s do: an event id must be
    unique, not unguessable, and ``os.urandom`` is a system call that releases the GIL.
    The SDK's sender makes one per record of up to 1000 points; each release made it
    wait for a training loop that never sleeps to hand the GIL back (up to the 5 ms
    switch interval), and that wait, not the work, was most of its time when overloaded.
    """
    return uuid.UUID(int=_EVENT_ID_BITS.getrandbits(128), version=4)


def is_run_id(value: str) -> bool:
    """Whether ``value`` has the form of a run id (32 lowercase hex digits)."""
    return _RUN_ID.match(value) is not None


def run_start_ms(run_id: str) -> int:
    """A new run's start time: the time its UUIDv7 id carries, else now (Unix ms)."""
    return run_id_time_ms(run_id) or time.time_ns() // 1_000_000


def run_id_time_ms(run_id: str) -> int | None:
    """The creation time in Unix milliseconds a UUIDv7 run id carries, or None for other ids."""
    value = uuid.UUID(hex=run_id)
    if value.version != _VERSION_7:
        return None
    return value.int >> 80
