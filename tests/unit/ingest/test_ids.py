"""Run ids are UUIDv7s: time-ordered, carrying their creation time; event ids are random
UUIDv4s from a generator of their own."""

from __future__ import annotations

import random
import uuid

from ingest.ids import is_run_id, new_event_id, new_run_id, run_id_time_ms


def test_a_run_id_is_a_version_7_uuid_in_hex() -> None:
    run_id = new_run_id()
    assert is_run_id(run_id)
    parsed = uuid.UUID(hex=run_id)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_a_run_id_carries_its_creation_time() -> None:
    assert run_id_time_ms(new_run_id(now_ms=1_707_723_600_000)) == 1_707_723_600_000


def test_run_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_run_id(now_ms=1_000 + i) for i in range(100)]
    assert ids == sorted(ids)
    assert len({new_run_id() for _ in range(1000)}) == 1000


def test_other_uuids_carry_no_time() -> None:
    assert run_id_time_ms(uuid.uuid4().hex) is None


def test_a_seeded_global_random_neither_repeats_event_ids_nor_is_disturbed_by_them() -> None:
    """Training scripts seed ``random`` for reproducible runs: two of them seeded alike
    still get distinct event ids, and the SDK drawing ids leaves their sequence as it
    would be without the SDK."""
    random.seed(42)
    first = [new_event_id() for _ in range(3)]
    drawn_with_sdk = random.random()
    random.seed(42)
    second = [new_event_id() for _ in range(3)]
    random.seed(42)
    drawn_alone = random.random()
    assert len(set(first + second)) == 6
    assert drawn_with_sdk == drawn_alone
    assert all(event_id.version == 4 for event_id in first)
