"""Finding a trainer's sender process (``producers.delivery.sidecar``) from outside, and
waiting for processes to end, for the tests that kill one or the other."""

from __future__ import annotations

import time
from pathlib import Path


def sender_pids(parent: int | str = "self") -> list[int]:
    """The sender processes ``parent`` (this process by default) started."""
    found = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # it just ended
            if b"producers.delivery.sidecar" in cmdline:
                found.append(int(pid))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no one reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_ended(pids: list[int], within_s: float = 60.0) -> None:
    """Waits until each of ``pids`` has ended."""
    deadline = time.monotonic() + within_s
    while any(map(running, pids)):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if running(p)]}"
        time.sleep(0.02)
