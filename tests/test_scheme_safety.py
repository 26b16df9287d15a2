"""Scheme cases against hostile or conflicting input: formulas in exports, members owned by cases, second schemes."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from engine.errors import Conflict
from engine.runtime.schemes import Schemes
from engine.service import Sagsflow
from engine.storage.tables import Case, SchemeMember
from tests.scheme_helpers import CASEWORKER, REPORT, SCHEME_PROCESS, Klap, open_scheme, permit_row, permits_csv
from tests.test_schemes import submit

FORMULA = '=HYPERLINK("http://evil.example","klik")'


@pytest.fixture
def klap(service: Sagsflow) -> Klap:
    return open_scheme(service)


def test_export_keeps_formulas_as_text(klap: Klap) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    case = klap.request_cases()[0]
    hostile = {**REPORT, "site_used": FORMULA, "sediment_references": "+cmd|' /C calc'!A0"}
    submit(klap, klap.tokens()[case.id], hostile)

    as_csv = klap.schemes.export(CASEWORKER, klap.scheme_id, "2026", "csv", "da")
    as_xlsx = klap.schemes.export(CASEWORKER, klap.scheme_id, "2026", "xlsx", "da")

    row = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))[1]
    assert "'" + FORMULA in row
    assert "'+cmd|' /C calc'!A0" in row
    sheet = load_workbook(io.BytesIO(as_xlsx.content))["2026"]
    cells = next(iter(sheet.iter_rows(min_row=2, max_row=2)))
    formula_cells = [cell for cell in cells if cell.value == FORMULA]
    assert len(formula_cells) == 1
    assert formula_cells[0].data_type == "s"


def test_import_keeps_case_member(klap: Klap) -> None:
    klap.add_members(1)
    with klap.service.database.write() as session:
        session.execute(update(SchemeMember).values(member_case_id=klap.scheme_id))
    key = permit_row(1)["member_key"]

    with pytest.raises(Conflict) as refused:
        klap.schemes.import_members(
            CASEWORKER, klap.scheme_id, permits_csv([permit_row(1, applicant_name="Overtaget Firma ApS")]), "csv"
        )

    assert refused.value.code == "member_is_case"
    assert key in refused.value.text.da
    with klap.service.database.read() as session:
        member = session.scalars(select(SchemeMember)).one()
    assert member.data["applicant_name"] != "Overtaget Firma ApS"


def test_second_scheme_skips_requested_permit(klap: Klap, service: Sagsflow) -> None:
    klap.add_members(2)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    second = service.submit(CASEWORKER, SCHEME_PROCESS, {"scheme_name": "KLAP, anden ordningssag"}, "da")
    schemes = Schemes(service)
    schemes.import_members(CASEWORKER, second["id"], permits_csv([permit_row(1), permit_row(3)]), "csv")

    report = schemes.run_requests(CASEWORKER, second["id"], "2026")

    assert report.created == 1
    with service.database.read() as session:
        keys = [
            case.data["permit_reference"]
            for case in session.scalars(select(Case).where(Case.process_id == "klap-aarligt-tilsyn"))
        ]
    assert sorted(keys) == sorted({permit_row(index)["member_key"] for index in (1, 2, 3)})
