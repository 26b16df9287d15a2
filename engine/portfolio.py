"""The agency's map of processes: by skeleton, rollout priority and deployment status.

Each process carries a `portfolio:` section (rollout priority, cases a year, minutes saved
per case, expected effect). `portfolio_rows` joins it with what the database holds. A
process is `deployed` when its newest deployed version has the content hash of the
definition files as they are now. It is `changed` when an older definition is deployed,
and `not_deployed` when none is. `sagsflow portfolio` shows the rows and exports them as CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select

from engine.definitions.compile import CompiledProcess
from engine.i18n import Language
from engine.runtime.schemes import inert_cell
from engine.storage.database import Database
from engine.storage.tables import ProcessVersion

Status = Literal["deployed", "changed", "not_deployed"]
STATUS_LABELS: dict[Status, dict[Language, str]] = {
    "deployed": {"da": "udrullet", "en": "deployed"},
    "changed": {"da": "ændret siden udrulning", "en": "changed since deployment"},
    "not_deployed": {"da": "ikke udrullet", "en": "not deployed"},
}
# Skeletons that belong to a family of one of the three base models.
FAMILIES = {"puljesag": "tilskud", "ordningssag": "tilsyn"}


@dataclass(frozen=True)
class PortfolioRow:
    process: str
    skeleton: str
    title: dict[Language, str]
    classification: str
    priority: int | None
    cases_per_year: int | None
    minutes_saved_per_case: int | None
    expected_effect: dict[Language, str] | None
    status: Status
    deployed_version: int | None

    @property
    def family(self) -> str:
        return FAMILIES.get(self.skeleton, self.skeleton)

    @property
    def hours_saved_per_year(self) -> int | None:
        if self.cases_per_year is None or self.minutes_saved_per_case is None:
            return None
        return round(self.cases_per_year * self.minutes_saved_per_case / 60)


def deployed_versions(database: Database) -> dict[str, tuple[int, str]]:
    """The newest deployed version of each process: its number and content hash."""
    newest = (
        select(ProcessVersion.process_id, func.max(ProcessVersion.version).label("version"))
        .group_by(ProcessVersion.process_id)
        .subquery()
    )
    query = select(ProcessVersion.process_id, ProcessVersion.version, ProcessVersion.content_hash).join(
        newest,
        (ProcessVersion.process_id == newest.c.process_id) & (ProcessVersion.version == newest.c.version),
    )
    with database.read() as session:
        return {process_id: (version, content_hash) for process_id, version, content_hash in session.execute(query)}


def portfolio_rows(compiled: Iterable[CompiledProcess], deployed: Mapping[str, tuple[int, str]]) -> list[PortfolioRow]:
    rows = []
    for process in compiled:
        definition = process.definition
        plan = definition.portfolio
        version = deployed.get(process.id)
        if version is None:
            status: Status = "not_deployed"
        elif version[1] == process.content_hash:
            status = "deployed"
        else:
            status = "changed"
        rows.append(
            PortfolioRow(
                process=process.id,
                skeleton=definition.skeleton,
                title={"da": definition.title.da, "en": definition.title.en},
                classification=definition.classification,
                priority=plan.priority if plan else None,
                cases_per_year=plan.cases_per_year if plan else None,
                minutes_saved_per_case=plan.minutes_saved_per_case if plan else None,
                expected_effect={"da": plan.expected_effect.da, "en": plan.expected_effect.en} if plan else None,
                status=status,
                deployed_version=version[0] if version else None,
            )
        )
    # The map's order: family, skeleton, priority (processes without a plan last), id.
    return sorted(rows, key=lambda row: (row.family, row.skeleton, row.priority or 9, row.process))


CSV_COLUMNS = (
    "process",
    "family",
    "skeleton",
    "title_da",
    "title_en",
    "classification",
    "priority",
    "cases_per_year",
    "minutes_saved_per_case",
    "hours_saved_per_year",
    "status",
    "deployed_version",
    "expected_effect_da",
    "expected_effect_en",
)


def _cell(value: object) -> object:
    return "" if value is None else inert_cell(value)


def to_csv(rows: Iterable[PortfolioRow]) -> bytes:
    """Write the rows as CSV in UTF-8 with a byte order mark, which spreadsheet programs need."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        effect = row.expected_effect or {}
        writer.writerow(
            [
                _cell(value)
                for value in (
                    row.process,
                    row.family,
                    row.skeleton,
                    row.title["da"],
                    row.title["en"],
                    row.classification,
                    row.priority,
                    row.cases_per_year,
                    row.minutes_saved_per_case,
                    row.hours_saved_per_year,
                    row.status,
                    row.deployed_version,
                    effect.get("da"),
                    effect.get("en"),
                )
            ]
        )
    return buffer.getvalue().encode("utf-8-sig")
