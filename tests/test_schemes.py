"""The KLAP scheme case: members, the bulk run of annual report requests, reports through the link, the overview."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from engine.adapters.digital_post import MemoryDigitalPost
from engine.errors import Conflict, Forbidden, InvalidInput, NotFound
from engine.runtime import scheme_requests
from engine.runtime.audit import missing_cases, verify_chain
from engine.runtime.hearings import Gone
from engine.runtime.scheme_reports import report_request, submit_report
from engine.runtime.worker import Worker
from engine.service import Sagsflow
from engine.storage.tables import (
    Case,
    CaseEvent,
    CaseLink,
    CaseStep,
    Document,
    OutboxMessage,
    SchemeMember,
    SchemeRequest,
)
from tests.conftest import Clock
from tests.scheme_helpers import (
    APPLICANT,
    APPROVER,
    CASEWORKER,
    OTHER_TEAM,
    REPORT,
    Klap,
    open_scheme,
    permit_row,
    permits_csv,
)

# The tests' clock starts on 4 December 2026, so the reports on 2026 are due on Monday 1 February 2027.
DUE = datetime(2027, 2, 1, 22, 59, 59, tzinfo=UTC)


@pytest.fixture
def klap(service: Sagsflow) -> Klap:
    return open_scheme(service)


def count(klap: Klap, model: Any, *conditions: Any) -> int:
    with klap.service.database.read() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


def submit(klap: Klap, token: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    service = klap.service
    return submit_report(
        service.database, service.services, service.catalog, token, REPORT if values is None else values
    )


# The bulk run ----------------------------------------------------------------------------------------


def test_bulk_run_creates_cases_and_letters(klap: Klap) -> None:
    klap.add_members(12)
    seen: list[tuple[int, int]] = []

    report = klap.schemes.run_requests(
        CASEWORKER, klap.scheme_id, "2026", chunk_size=5, progress=lambda *p: seen.append(p)
    )

    assert (report.created, report.existing, report.members, report.chunks) == (12, 0, 12, 3)
    assert report.reply_by == date(2027, 2, 1)
    assert seen == [(5, 12), (10, 12), (12, 12)]
    cases = klap.request_cases()
    assert [case.journal_number for case in cases] == [f"2026-{number:06d}" for number in range(2, 14)]
    assert {case.phase for case in cases} == {"selection"}
    assert count(klap, SchemeRequest) == 12
    assert count(klap, Document, Document.kind == "letter", Document.status == "queued") == 12
    assert count(klap, OutboxMessage) == 12


def test_request_case_waits_for_the_report(klap: Klap) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    (case,) = klap.request_cases()
    view = klap.service.get_case(CASEWORKER, case.id, "da")

    steps = {row["step"]: row for row in view["checklist"]}
    assert steps["annual_report"]["status"] == "waiting"
    assert steps["annual_report"]["due_at"] == DUE.isoformat()
    assert (steps["report_request_letter"]["status"], steps["report_request_letter"]["outcome"]) == ("done", "sent")
    assert view["data"]["report_year"] == 2026
    assert view["data"]["permit_reference"] == "KLAP-2024-00001"
    assert view["data"]["scheme_case"] == klap.journal_number
    assert view["data"]["subject_name"] == "Havneselskab nr. 1 A/S"
    assert view["team"] == "klap"
    assert view["title"] == "Årsindberetning 2026: Havneselskab nr. 1 A/S, Aarhus Havn → Aarhus Bugt"


def test_request_letter_links_to_the_report(klap: Klap, post: MemoryDigitalPost) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()
    token = klap.tokens()[case.id]

    (letter,) = klap.service.list_letters(CASEWORKER, case.id)
    klap.service.dispatch_outbox()

    assert "http://127.0.0.1:8000/report-replies/REDACTED" in letter["text"]
    assert token not in letter["text"]
    assert "senest den 1. februar 2027" in letter["text"]
    assert "10.001 m³" in letter["text"]
    (sent,) = post.delivered.values()
    assert f"/report-replies/{token}" in sent.main_document_text
    assert f"/report-replies/{token}" in (sent.main_document_html or "")


def test_bulk_run_audit_chains_verify(klap: Klap) -> None:
    klap.add_members(7)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026", chunk_size=3)

    with klap.service.database.read() as session:
        reports = [verify_chain(session, case.id) for case in klap.request_cases()]
        scheme = verify_chain(session, klap.scheme_id)
        missing = missing_cases(session)
        events = list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == klap.scheme_id)))

    assert [report.problem for report in reports] == [None] * 7
    assert all(report.events == 1 and report.documents == 1 for report in reports)
    assert scheme.ok
    assert missing == []
    assert [event.command for event in events] == [
        "submit",
        "scheme_import",
        "scheme_requests",
        "scheme_requests",
        "scheme_requests",
    ]
    assert events[2].changes["requests"]["created"] == 3


def test_rerun_creates_nothing(klap: Klap) -> None:
    klap.add_members(4)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    again = klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    assert (again.created, again.existing, again.chunks) == (0, 4, 0)
    assert count(klap, Case, Case.process_id == "klap-aarligt-tilsyn") == 4


def test_rerun_adds_only_new_members(klap: Klap) -> None:
    klap.add_members(3)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    klap.add_members(2, start=4)

    again = klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    assert (again.created, again.existing) == (2, 3)
    assert count(klap, SchemeRequest) == 5


def test_run_that_fails_half_way_completes_on_rerun(klap: Klap, monkeypatch: pytest.MonkeyPatch) -> None:
    klap.add_members(10)
    write_chunk = scheme_requests.write_chunk
    calls = 0

    def failing(*args: Any) -> list[str]:
        nonlocal calls
        calls += 1
        numbers = write_chunk(*args)
        if calls == 2:
            raise RuntimeError("the database went away during the second chunk")
        return numbers

    monkeypatch.setattr(scheme_requests, "_write_chunk", failing)
    with pytest.raises(RuntimeError, match="second chunk"):
        klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026", chunk_size=4)
    assert count(klap, SchemeRequest) == 4
    assert count(klap, Case, Case.process_id == "klap-aarligt-tilsyn") == 4

    monkeypatch.undo()
    rerun = klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026", chunk_size=4)

    assert (rerun.created, rerun.existing) == (6, 4)
    cases = klap.request_cases()
    assert len(cases) == 10
    # The failed chunk's journal numbers were rolled back with it, so the numbers have no gap.
    assert [case.journal_sequence for case in cases] == list(range(2, 12))
    with klap.service.database.read() as session:
        members = session.execute(select(SchemeRequest.member_id, func.count()).group_by(SchemeRequest.member_id))
        assert {number for _, number in members} == {1}
        assert missing_cases(session) == []
        assert all(verify_chain(session, case.id).ok for case in cases)


def test_two_racing_runs_create_each_request_once(klap: Klap, clock: Clock) -> None:
    klap.add_members(12)
    # Commands read the clock while they hold the scheme case's lock, so the two runs overlap.
    clock.delay = 0.01
    reports: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026", chunk_size=3))
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(report.created for report in reports) == 12
    assert count(klap, SchemeRequest) == 12
    assert count(klap, Case, Case.process_id == "klap-aarligt-tilsyn") == 12


def test_inactive_member_gets_no_request(klap: Klap) -> None:
    klap.add_members(3)
    with klap.service.database.write() as session:
        member = session.scalars(select(SchemeMember).where(SchemeMember.member_key == "KLAP-2024-00002")).one()
        member.active = False

    report = klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    assert (report.created, report.members) == (2, 2)


@pytest.mark.parametrize(
    ("period", "code"),
    [("26", "invalid_value"), ("2027", "out_of_range"), ("1999", "out_of_range"), ("året", "invalid_value")],
)
def test_bulk_run_rejects_invalid_period(klap: Klap, period: str, code: str) -> None:
    with pytest.raises(InvalidInput) as rejected:
        klap.schemes.run_requests(CASEWORKER, klap.scheme_id, period)

    assert [(error.field, error.code) for error in rejected.value.errors] == [("period", code)]


def test_bulk_run_after_the_deadline_needs_a_new_one(klap: Klap, clock: Clock) -> None:
    klap.add_members(2)
    clock.now = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)

    with pytest.raises(Conflict, match=r"deadline for 2026 \(2027-02-01\) has passed") as late:
        klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    report = klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026", reply_by=date(2027, 3, 13))

    assert late.value.code == "reply_deadline_passed"
    # 13 March 2027 is a Saturday, so the deadline moves to Monday 15 March.
    assert report.reply_by == date(2027, 3, 15)


def test_bulk_run_needs_a_caseworker_who_sees_the_scheme(klap: Klap) -> None:
    klap.add_members(1)

    with pytest.raises(Forbidden) as approver:
        klap.schemes.run_requests(APPROVER, klap.scheme_id, "2026")
    with pytest.raises(Forbidden) as applicant:
        klap.schemes.run_requests(APPLICANT, klap.scheme_id, "2026")
    with pytest.raises(NotFound):
        klap.schemes.run_requests(OTHER_TEAM, klap.scheme_id, "2026")

    assert approver.value.code == "missing_role"
    assert applicant.value.code == "staff_only"
    assert count(klap, SchemeRequest) == 0


def test_bulk_run_on_a_case_that_is_no_scheme(klap: Klap) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()

    with pytest.raises(NotFound, match="is not a scheme case"):
        klap.schemes.run_requests(CASEWORKER, case.journal_number, "2026")


def test_closed_scheme_takes_no_requests(klap: Klap) -> None:
    klap.add_members(1)
    klap.service.complete_step(
        CASEWORKER, klap.scheme_id, "close_scheme", {"closing_note": "Ordningen er afløst."}, None, "da"
    )

    with pytest.raises(Conflict) as closed:
        klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    assert closed.value.code == "scheme_closed"


# Reports through the link ----------------------------------------------------------------------------


def test_report_fills_fields_and_sends_receipt(klap: Klap, post: MemoryDigitalPost) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()

    result = submit(klap, klap.tokens()[case.id])
    klap.service.dispatch_outbox()

    assert (result["journal_number"], result["period"], result["document"]) == (case.journal_number, "2026", 2)
    view = klap.service.get_case(CASEWORKER, case.id, "da")
    assert view["phase"]["id"] == "inspection"
    assert {key: view["data"][key] for key in REPORT} == REPORT
    steps = {row["step"]: row for row in view["checklist"]}
    assert (steps["annual_report"]["outcome"], steps["annual_report"]["completed_by"]) == (
        "submitted",
        "scheme-member:KLAP-2024-00001",
    )
    assert steps["report_receipt_letter"]["outcome"] == "sent"
    assert steps["annual_report"]["documents"] == [2]
    assert [field["field"] for field in steps["annual_report"]["form"]][:2] == ["dumped_volume_m3", "dumping_periods"]
    assert steps["report_assessment"]["status"] == "active"
    assert [document["kind"] for document in view["documents"]] == ["letter", "report", "letter"]
    receipt = next(message for message in post.delivered.values() if "Kvittering" in message.label)
    assert "12.000 m³" in receipt.main_document_text
    with klap.service.database.read() as session:
        request = session.scalars(select(SchemeRequest)).one()
        assert request.replied_at is not None
        assert verify_chain(session, case.id).ok


def test_report_of_zero_cubic_metres_needs_no_periods(klap: Klap) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()

    submit(klap, klap.tokens()[case.id], {"dumped_volume_m3": 0})

    view = klap.service.get_case(CASEWORKER, case.id, "da")
    assert view["data"]["dumped_volume_m3"] == 0
    assert view["phase"]["id"] == "inspection"


def test_report_link_describes_the_request(klap: Klap) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()
    service = klap.service

    facts = report_request(service.database, service.services, service.catalog, klap.tokens()[case.id], "en")

    assert facts["journal_number"] == case.journal_number
    assert facts["period"] == "2026"
    assert facts["deadline"] == DUE.isoformat()
    assert facts["party"] == "Havneselskab nr. 1 A/S"
    assert [field["field"] for field in facts["form"]] == [
        "dumped_volume_m3",
        "dumping_periods",
        "site_used",
        "sediment_references",
        "report_note",
    ]
    assert facts["form"][0]["label"] == "Volume dumped in the year (m³)"


def test_second_report_for_the_year_is_refused(klap: Klap) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()
    token = klap.tokens()[case.id]
    submit(klap, token)
    before = klap.service.get_case(CASEWORKER, case.id, "da")

    with pytest.raises(Conflict) as second:
        submit(
            klap, token, {"dumped_volume_m3": 500, **{key: REPORT[key] for key in REPORT if key != "dumped_volume_m3"}}
        )

    assert second.value.code == "already_reported"
    assert "report on 2026 was already received" in second.value.text.en
    after = klap.service.get_case(CASEWORKER, case.id, "da")
    assert (after["version"], after["data"]["dumped_volume_m3"]) == (before["version"], 12000)


def test_unknown_token_is_refused(klap: Klap) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    for token in ("x" * 43, "", "æ" * 10, "y" * 500):
        with pytest.raises(NotFound) as unknown:
            submit(klap, token)
        assert unknown.value.code == "unknown_report_link"


def test_altered_token_is_refused(klap: Klap) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()
    token = klap.tokens()[case.id]

    with pytest.raises(NotFound):
        submit(klap, token[:-1] + ("A" if token[-1] != "A" else "B"))


def test_expired_link_is_refused(klap: Klap, clock: Clock) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()
    clock.now = datetime(2027, 2, 2, 8, 0, tzinfo=UTC)

    with pytest.raises(Gone) as expired:
        submit(klap, klap.tokens()[case.id])

    assert expired.value.code == "report_link_expired"
    assert count(klap, Document, Document.case_id == case.id) == 1


@pytest.mark.parametrize(
    ("values", "fields"),
    [
        ({"dumped_volume_m3": -5}, ["data.dumped_volume_m3"]),
        ({"dumped_volume_m3": "mange"}, ["data.dumped_volume_m3"]),
        ({"dumped_volume_m3": 800}, ["data.dumping_periods", "data.site_used", "data.sediment_references"]),
        ({}, ["data.dumped_volume_m3"]),
        ({"dumped_volume_m3": 0, "inspection_date": "2026-12-04"}, ["data.inspection_date"]),
    ],
)
def test_invalid_report_is_refused(klap: Klap, values: dict[str, Any], fields: list[str]) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()

    with pytest.raises(InvalidInput) as invalid:
        submit(klap, klap.tokens()[case.id], values)

    assert [error.field for error in invalid.value.errors] == fields
    assert count(klap, Document, Document.case_id == case.id) == 1


def test_worker_ends_the_report_step_at_the_deadline(klap: Klap, clock: Clock) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()
    clock.now = datetime(2027, 2, 2, 8, 0, tzinfo=UTC)

    report = Worker(klap.service.database, klap.service.services, klap.service.catalog).run_round()

    assert report.timers == 1
    view = klap.service.get_case(CASEWORKER, case.id, "da")
    steps = {row["step"]: row for row in view["checklist"]}
    assert steps["annual_report"]["outcome"] == "deadline_passed"
    assert steps["report_receipt_letter"]["outcome"] == "skipped"
    assert view["phase"]["id"] == "inspection"
    with klap.service.database.read() as session:
        events = session.scalars(select(CaseEvent.command).where(CaseEvent.case_id == case.id)).all()
    assert list(events) == [scheme_requests.COMMAND, "letter_sent", "report_deadline"]


# Members ------------------------------------------------------------------------------------------------


def test_import_adds_members_with_snapshots(klap: Klap) -> None:
    result = klap.add_members(3)

    listed = klap.schemes.members(CASEWORKER, klap.scheme_id)

    assert (result["rows"], result["added"], result["updated"]) == (3, 3, 0)
    assert listed["total"] == 3
    first = listed["items"][0]
    assert first["key"] == "KLAP-2024-00001"
    assert first["case"] is None
    assert first["data"]["granted_volume_m3"] == 10_001
    assert first["data"]["applicant_postcode"] == "8000"


def test_import_refreshes_existing_members(klap: Klap) -> None:
    klap.add_members(2)
    rows = [permit_row(1, applicant_address="Nordkajen 4"), permit_row(3)]

    result = klap.schemes.import_members(CASEWORKER, klap.scheme_id, permits_csv(rows, ";"), "csv")

    assert (result["added"], result["updated"]) == (1, 1)
    listed = klap.schemes.members(CASEWORKER, klap.scheme_id)
    assert listed["total"] == 3
    assert listed["items"][0]["data"]["applicant_address"] == "Nordkajen 4"


def test_import_from_json(klap: Klap) -> None:
    content = b'[\n  {"member_key": "A-1", "applicant_name": "Fjordhavnen ApS", "applicant_cvr": "90131443",\n' + (
        b'   "applicant_address": "Kaj 1", "applicant_postcode": "7100", "applicant_city": "Vejle",\n'
        b'   "harbour": "VEJ", "dumping_site": "K_114", "granted_volume_m3": 5000, "period_end": "2028-12-31",\n'
        b'   "language": "en"}\n]\n'
    )

    result = klap.schemes.import_members(CASEWORKER, klap.scheme_id, content, "json")

    assert result["added"] == 1
    (member,) = klap.schemes.members(CASEWORKER, klap.scheme_id)["items"]
    assert (member["language"], member["data"]["harbour"]) == ("en", "VEJ")


def test_import_reports_each_bad_row_with_its_line(klap: Klap) -> None:
    rows = [
        permit_row(1),
        permit_row(2, applicant_cvr="12345678"),
        permit_row(3, granted_volume_m3="lots"),
        permit_row(1),
        permit_row(5, dumping_site="K_999"),
        permit_row(6, member_key=""),
    ]

    with pytest.raises(InvalidInput) as invalid:
        klap.schemes.import_members(CASEWORKER, klap.scheme_id, permits_csv(rows), "csv")

    assert [error.field for error in invalid.value.errors] == [
        "lines.3.applicant_cvr",
        "lines.4.granted_volume_m3",
        "lines.5.member_key",
        "lines.6.dumping_site",
        "lines.7.member_key",
    ]
    assert invalid.value.errors[2].text.en == "Line 5: 'KLAP-2024-00001' is also on line 2"
    assert count(klap, SchemeMember) == 0


def test_import_reports_the_line_of_a_json_entry(klap: Klap) -> None:
    content = b'[\n  {"member_key": "A-1"},\n\n  {"member_key": "A-2", "harbour": "XXX"}\n]'

    with pytest.raises(InvalidInput) as invalid:
        klap.schemes.import_members(CASEWORKER, klap.scheme_id, content, "json")

    assert {error.field.split(".")[1] for error in invalid.value.errors} == {"2", "4"}
    assert "lines.4.harbour" in [error.field for error in invalid.value.errors]


@pytest.mark.parametrize(
    ("content", "file_format", "field"),
    [
        (b"", "csv", "file"),
        (b"member_key,colour\nA-1,red\n", "csv", "lines.2.colour"),
        (b'{"member_key": "A-1"}', "json", "lines.1.file"),
        (b"\xff\xfe", "csv", "lines.1.file"),
        (b"member_key\nA-1\n", "xml", "format"),
    ],
)
def test_import_rejects_unreadable_files(klap: Klap, content: bytes, file_format: str, field: str) -> None:
    with pytest.raises(InvalidInput) as invalid:
        klap.schemes.import_members(CASEWORKER, klap.scheme_id, content, file_format)

    assert invalid.value.errors[0].field == field


def test_import_needs_a_caseworker(klap: Klap) -> None:
    with pytest.raises(Forbidden):
        klap.schemes.import_members(APPROVER, klap.scheme_id, permits_csv([permit_row(1)]), "csv")


# The overview and the exports -------------------------------------------------------------------------


def _reported_scheme(klap: Klap, clock: Clock) -> None:
    """Three members: one reports, one does not before the deadline, and one joins after the run."""
    klap.add_members(2)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    first = klap.request_cases()[0]
    submit(klap, klap.tokens()[first.id])
    klap.add_members(1, start=3)
    clock.now = datetime(2027, 2, 3, 9, 0, tzinfo=UTC)


def test_overview_counts_replies_and_missing(klap: Klap, clock: Clock) -> None:
    _reported_scheme(klap, clock)

    overview = klap.schemes.overview(CASEWORKER, klap.scheme_id, "en", period="2026")

    assert overview["members"] == {"active": 3, "inactive": 0}
    assert overview["periods"] == [
        {
            "period": "2026",
            "requests": 2,
            "replies": 1,
            "missing": 1,
            "overdue": 1,
            "not_requested": 1,
            "reply_by": "2027-02-01",
        }
    ]
    items = overview["requests"]["items"]
    assert [(item["member"], item["status"]) for item in items] == [
        ("KLAP-2024-00001", "replied"),
        ("KLAP-2024-00002", "overdue"),
    ]
    assert items[0]["report"]["dumped_volume_m3"] == 12000
    assert items[1]["report"] is None
    assert items[1]["status_label"] == "missing, deadline passed"


def test_export_as_csv(klap: Klap, clock: Clock) -> None:
    _reported_scheme(klap, clock)

    export = klap.schemes.export(CASEWORKER, klap.scheme_id, "2026", "csv", "da")

    assert export.filename == f"ordningssag-{klap.journal_number}-2026.csv"
    assert export.media_type == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert rows[0][:7] == ["Periode", "Medlem", "Navn", "Journalnummer", "Status", "Svarfrist", "Indberettet"]
    assert rows[0][7] == "Klappet mængde i året (m³)"
    assert rows[1][:6] == [
        "2026",
        "KLAP-2024-00001",
        "Havneselskab nr. 1 A/S",
        "2026-000002",
        "indberettet",
        "2027-02-01",
    ]
    assert rows[1][7:11] == ["12000", REPORT["dumping_periods"], REPORT["site_used"], REPORT["sediment_references"]]
    assert rows[2][4] == "mangler, fristen er udløbet"
    assert rows[2][6:] == ["", "", "", "", "", ""]
    assert len(rows) == 3


def test_export_as_xlsx(klap: Klap, clock: Clock) -> None:
    _reported_scheme(klap, clock)

    export = klap.schemes.export(CASEWORKER, klap.scheme_id, "2026", "xlsx", "en")

    sheet = load_workbook(io.BytesIO(export.content), read_only=True)["2026"]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0][:5] == ["Period", "Member", "Name", "Journal number", "Status"]
    assert rows[1][4] == "reported"
    assert rows[1][5] == datetime(2027, 2, 1)
    assert rows[1][7] == 12000
    assert rows[2][4] == "missing, deadline passed"
    assert len(rows) == 3


def test_export_rejects_unknown_format(klap: Klap) -> None:
    with pytest.raises(InvalidInput) as invalid:
        klap.schemes.export(CASEWORKER, klap.scheme_id, "2026", "pdf", "da")

    assert invalid.value.errors[0].field == "format"


def test_overview_needs_staff_who_see_the_scheme(klap: Klap) -> None:
    with pytest.raises(Forbidden):
        klap.schemes.overview(APPLICANT, klap.scheme_id, "da")
    with pytest.raises(NotFound):
        klap.schemes.overview(OTHER_TEAM, klap.scheme_id, "da")

    assert klap.schemes.overview(APPROVER, klap.scheme_id, "da")["periods"] == []


def test_step_rows_match_the_process(klap: Klap) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    with klap.service.database.read() as session:
        rows = session.execute(select(CaseStep.step_id, CaseStep.position, CaseStep.round).order_by(CaseStep.id)).all()

    assert [tuple(row) for row in rows if row[0] != "close_scheme"] == [
        ("annual_report", 0, 1),
        ("report_request_letter", 1, 1),
    ]


# Joining through a granted permit ---------------------------------------------------------------------

PERMIT = {
    "applicant_name": "Fjordby Havn A/S",
    "applicant_cvr": "91312220",
    "applicant_address": "Havnevej 2",
    "applicant_postcode": "7100",
    "applicant_city": "Vejle",
    "applicant_email": "havn@fjordby.example",
    "harbour": "VEJ",
    "dumping_site": "K_114",
    "volume_applied_m3": 8_000,
    "dredging_area": "Havnebassinet, 0,8 ha, uddybes fra 4,0 til 4,5 m.",
    "sediment_analysis_reference": "Rapport 26-0311 af 2. november 2026",
    "contamination_class": "below_lower",
    "period_start": "2027-01-01",
    "period_end": "2031-12-31",
}


def grant_permit(service: Sagsflow) -> dict[str, Any]:
    """Take a KLAP permit application to a granted decision, which makes it join the scheme."""
    case = service.submit(APPLICANT, "klap-tilladelse", PERMIT, "da")
    for step_id, data in (
        ("completeness_check", {"application_complete": True}),
        ("fact_assessment", {"assessment_note": "Sedimentet er rent.", "consultation_required": False}),
        (
            "draft_decision",
            {
                "decision_outcome": "granted",
                "granted_volume_m3": 8_000,
                "decision_text": "Miljøstyrelsen giver tilladelse til klapning af 8.000 m³.",
                "statement_of_reasons": "Materialet ligger under nedre aktionsniveau.",
            },
        ),
    ):
        case = service.complete_step(CASEWORKER, case["id"], step_id, data, None, "da")
    return service.approve(APPROVER, case["id"], "decision_approval", "approve", None, None, "da")


def test_granted_permit_joins_the_scheme(klap: Klap) -> None:
    permit = grant_permit(klap.service)

    (member,) = klap.schemes.members(CASEWORKER, klap.scheme_id)["items"]
    report = klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    steps = {row["step"]: row for row in permit["checklist"]}
    assert steps["scheme_membership"]["outcome"] == "joined"
    assert (member["key"], member["case"]) == (permit["journal_number"], permit["journal_number"])
    assert member["data"]["granted_volume_m3"] == 8_000
    assert member["data"]["harbour_name"] == "Vejle Havn"
    assert report.created == 1
    (request,) = klap.request_cases()
    assert request.data["permit_reference"] == permit["journal_number"]
    assert request.data["permit_valid_until"] == "2031-12-31"
    with klap.service.database.read() as session:
        links = session.execute(select(CaseLink.case_id, CaseLink.linked_case_id, CaseLink.kind)).all()
        assert [tuple(link) for link in links] == [(permit["id"], klap.scheme_id, "scheme")]
        assert verify_chain(session, klap.scheme_id).ok


def test_granted_permit_without_an_open_scheme(service: Sagsflow) -> None:
    permit = grant_permit(service)

    steps = {row["step"]: row for row in permit["checklist"]}
    assert steps["scheme_membership"]["outcome"] == "no_scheme"
    assert permit["phase"]["id"] == "closing"
