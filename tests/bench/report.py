"""Figures over repetitions, the targets beside them, and the README's table.

Every repeated figure is given as its spread, ``{"min", "median", "max", "runs"}``,
never as the best run; a target is met only if every repetition meets it.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def spread(values: list[float]) -> dict[str, Any]:
    """Min, median and max of the repetitions, and each repetition's value."""
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "runs": values,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One dict of repetitions as one dict of spreads: measurements (floats) become
    spreads, sizes (ints) stay one number when every run has the same, nested dicts are
    summarised in turn, flags must hold in every run, and what no run measured is None."""
    summary: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [run[key] for run in runs]
        if all(value is None for value in values):
            summary[key] = None
        elif isinstance(first, bool):
            summary[key] = all(values)
        elif isinstance(first, int) and len(set(values)) == 1:
            summary[key] = first
        elif isinstance(first, int | float) and None not in values:
            summary[key] = spread(values)
        elif isinstance(first, dict):
            summary[key] = summarise(values)
        else:
            summary[key] = values
    return summary


def ratios(numerators: list[float], denominators: list[float]) -> dict[str, Any]:
    """The spread of the ratio taken within each repetition."""
    return spread([a / b for a, b in zip(numerators, denominators, strict=True)])


def target(name: str, wanted: str, measured: Any, met: bool) -> dict[str, Any]:
    """One target: what it asks, what was measured, whether it was met."""
    return {"name": name, "target": wanted, "measured": measured, "met": met}


def fmt(value: Any, digits: int = 0) -> str:
    """A figure for the table: a spread as ``min / median / max``."""
    if isinstance(value, dict) and "median" in value:
        return " / ".join(f"{value[k]:,.{digits}f}" for k in ("min", "median", "max"))
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return "-" if value is None else str(value)


def write_readme(readme: Path, table: str, start: str = START, end: str = END) -> None:
    """Replaces what stands between the markers ``start`` and ``end`` (the bench's by
    default) in ``readme`` with ``table``.

    Raises:
        ValueError: the markers are missing.
    """
    text = readme.read_text()
    head, found_start, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found_start or not found_end:
        raise ValueError(f"{readme} has no {start} ... {end} section")
    readme.write_text(f"{head}{start}\n{table}\n{end}{tail}")
