"""A short run of the lifecycle benchmark (bench.lifecycle) on SQLite."""

from __future__ import annotations

import json
from pathlib import Path

from bench import lifecycle


def test_lifecycle_benchmark_on_sqlite(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"

    report = lifecycle.main(["--cases", "3", "--backend", "sqlite", "--json", str(report_path)])

    result = report["backends"]["sqlite"]
    assert list(report["backends"]) == ["sqlite"]
    assert result["cases"] == 3
    assert result["cases_per_second"] > 0
    assert result["steps_per_second"] > 0
    assert result["bytes_per_case"] > 0
    assert result["baseline_seconds"] > 0
    assert result["baseline_ratio"] > 0
    assert result["row_counts_match"] is True
    assert result["engine_row_counts"] == result["baseline_row_counts"]
    assert result["engine_row_counts"]["cases"] == 3
    assert result["replayed_statements"] > 0
    assert json.loads(report_path.read_text(encoding="utf-8")) == report


def test_lifecycle_counts_every_command() -> None:
    report = lifecycle.main(["--cases", "3", "--backend", "sqlite"])

    commands = report["backends"]["sqlite"]["commands"]
    assert commands["submit"]["calls"] == 3
    assert commands["approve decision_approval"]["calls"] == 3
    assert commands["complete_step closing_check"]["calls"] == 3
    # Examples 02 and 03 are on EU Annex A, so two of the three cases need the opinion.
    assert commands["complete_step scientific_opinion"]["calls"] == 2
    assert commands["dispatch_outbox"]["calls"] == 6
    assert all(stats["writes"] > 0 for stats in commands.values())
