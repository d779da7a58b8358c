"""The benchmark's report: spreads over repetitions, ratios within one, the README table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.report import END, START, ratios, summarise, write_readme


def test_measurements_become_spreads_and_sizes_stay_one_number() -> None:
    runs = [
        {"points": 200, "rate": 2.0, "exact": True, "cpu": None, "inner": {"ms": 5.0}},
        {"points": 200, "rate": 4.0, "exact": False, "cpu": None, "inner": {"ms": 1.0}},
        {"points": 200, "rate": 3.0, "exact": True, "cpu": None, "inner": {"ms": 3.0}},
    ]
    summary = summarise(runs)
    assert summary["points"] == 200
    assert summary["rate"] == {"min": 2.0, "median": 3.0, "max": 4.0, "runs": [2.0, 4.0, 3.0]}
    assert summary["exact"] is False
    assert summary["cpu"] is None
    assert summary["inner"]["ms"]["median"] == 3.0


def test_one_repetition_is_still_a_spread() -> None:
    assert summarise([{"rate": 2.5}])["rate"] == {
        "min": 2.5,
        "median": 2.5,
        "max": 2.5,
        "runs": [2.5],
    }


def test_a_ratio_is_taken_within_each_repetition() -> None:
    spread = ratios([10.0, 30.0], [5.0, 10.0])
    assert spread["runs"] == [2.0, 3.0]
    assert (spread["min"], spread["max"]) == (2.0, 3.0)


def test_the_table_replaces_only_what_stands_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{START}\nold table\n{END}\n\nafter\n")
    write_readme(readme, "| new |")
    assert readme.read_text() == f"# title\n\nbefore\n{START}\n| new |\n{END}\n\nafter\n"


def test_a_readme_without_markers_is_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="bench:start"):
        write_readme(readme, "| new |")
    assert readme.read_text() == "# no markers\n"
