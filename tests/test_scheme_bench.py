"""A short run of the bulk benchmark (bench.bulk) on SQLite."""

from __future__ import annotations

import json
from pathlib import Path

from bench import bulk


def test_bulk_benchmark_on_sqlite(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"

    report = bulk.main(["--sizes", "3", "6", "--backend", "sqlite", "--json", str(report_path)])

    results = report["results"]
    assert [(result["backend"], result["cases"]) for result in results] == [("sqlite", 3), ("sqlite", 6)]
    for result in results:
        assert result["bulk_cases_per_second"] > 0
        assert result["one_by_one_cases_per_second"] > 0
        assert result["ratio"] == result["one_by_one_seconds"] / result["bulk_seconds"]
        assert result["bulk_peak_bytes"] > 0
        assert result["chunks"] == 1
    assert set(report["memory_ratios"]) == {"sqlite"}
    assert json.loads(report_path.read_text(encoding="utf-8")) == report


def test_population_keys_are_unique() -> None:
    rows = bulk.population(500)

    assert len({row["member_key"] for row in rows}) == 500
    assert bulk.request_values(rows[0])["report_year"] == int(bulk.PERIOD)
