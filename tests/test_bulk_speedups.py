"""The shortcuts of the scheme case's bulk run: values it computes once and reuses, and its own INSERT path.

Each shortcut must give exactly what the engine's ordinary path gives, so these tests
compare the two, also after the clock or the authority's settings change during a run.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, select, text

from engine.calendar import COPENHAGEN, local_date
from engine.definitions.templates import (
    _MARKDOWN_ANYWHERE,
    _MARKDOWN_LINE_START,
    LetterRenderer,
    TemplateProblem,
    _escape_line_start,
    analyse_template,
    escape_markdown,
    template_names,
)
from engine.i18n import Language
from engine.runtime import scheme_requests
from engine.runtime import schemes as schemes_module
from engine.runtime.letters import copy_shared_context, letter_context, report_context, shared_letter_context
from engine.runtime.outbox import REDACTED_TOKEN
from engine.runtime.scheme_requests import REPORT_PATH, RequestPlan, insert_rows
from engine.service import duplicate_key
from engine.settings import Authority
from engine.storage.database import Database
from engine.storage.tables import Case, CaseStep, Document, Json, UtcDateTime
from tests.conftest import Clock
from tests.scheme_helpers import CASEWORKER, Klap, open_scheme, permit_row, permits_csv

REQUEST_LETTER = "annual_report_request"
NEW_AUTHORITY = Authority(name="Styrelsen for Klapning", city="Aarhus C", postcode="8000")


@pytest.fixture
def klap(service: Any) -> Klap:
    return open_scheme(service)


def letter_in_full(klap: Klap, case_id: int, authority: Authority) -> tuple[tuple[str, str], tuple[str, str]]:
    """Render a request case's letter as `CaseCommand.send_letter` would, without any of the bulk run's caches.

    Returns the text and HTML of that letter, and of the letter that the bulk run filed.
    """
    service = klap.service
    with service.database.read() as session:
        case = session.get_one(Case, case_id)
        _, process = service.catalog.by_version_id(session, case.process_version_id)
        steps = list(session.scalars(select(CaseStep).where(CaseStep.case_id == case_id)))
        filed = session.scalars(select(Document).where(Document.case_id == case_id)).one()
    services = dataclasses.replace(service.services, authority=authority)
    language: Language = "en" if case.language == "en" else "da"
    letter = process.definition.letters[REQUEST_LETTER]
    context = letter_context(case, process, services, case.received_at, language)
    context["deadlines"] = {step.step_id: local_date(step.due_at) for step in steps if step.due_at is not None}
    report_due = next(step.due_at for step in steps if step.kind == "report" and step.due_at is not None)
    context["report"] = report_context("2026", report_due, f"{services.public_url}{REPORT_PATH}{REDACTED_TOKEN}")
    rendered = process.renderer.render(letter.templates[language], letter.label.get(language), language, context)
    return (rendered.text, rendered.html), (filed.body_text, filed.body_html or "")


# The bulk run, end to end -------------------------------------------------------------------------


def test_chunks_follow_clock_and_authority(klap: Klap, clock: Clock) -> None:
    klap.add_members(3)
    authorities = [klap.service.services.authority]

    def progress(done: int, members: int) -> None:
        # After the first chunk the clock moves on three days. After the second the authority changes.
        if done == 1:
            clock.now += timedelta(days=3)
            authorities.append(authorities[-1])
        elif done == 2:
            klap.service.services.authority = NEW_AUTHORITY
            authorities.append(NEW_AUTHORITY)

    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026", chunk_size=1, progress=progress)

    cases = klap.request_cases()
    assert len(cases) == 3
    texts = []
    for case, authority in zip(cases, authorities, strict=True):
        full, filed = letter_in_full(klap, case.id, authority)
        assert filed == full
        texts.append(filed[0])
    assert "4. december 2026" in texts[0]
    assert "7. december 2026" in texts[1]
    assert "4. december 2026" not in texts[1]
    assert NEW_AUTHORITY.name in texts[2]
    assert NEW_AUTHORITY.name not in texts[1]


def test_second_run_uses_new_date_and_authority(klap: Klap, clock: Clock) -> None:
    klap.add_members(2)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2025", reply_by=date(2027, 3, 1))
    first_authority = klap.service.services.authority
    clock.now += timedelta(days=10)
    klap.service.services.authority = NEW_AUTHORITY

    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    cases = klap.request_cases()
    assert len(cases) == 4
    for case in cases[:2]:
        full, filed = letter_in_full(klap, case.id, first_authority)
        assert filed == full
        assert "4. december 2026" in filed[0]
    for case in cases[2:]:
        full, filed = letter_in_full(klap, case.id, NEW_AUTHORITY)
        assert filed == full
        assert "14. december 2026" in filed[0]
        assert NEW_AUTHORITY.name in filed[0]


def test_danish_and_english_letters_in_one_chunk(klap: Klap) -> None:
    rows = [permit_row(index, language=language) for index, language in enumerate(["en", "da", "en", "da"], 1)]
    klap.schemes.import_members(CASEWORKER, klap.scheme_id, permits_csv(rows), "csv")

    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")

    cases = klap.request_cases()
    assert [case.language for case in cases] == ["en", "da", "en", "da"]
    for case in cases:
        full, filed = letter_in_full(klap, case.id, klap.service.services.authority)
        assert filed == full
    assert "Request for the annual report" in letter_in_full(klap, cases[0].id, klap.service.services.authority)[1][0]


# The shared letter context ------------------------------------------------------------------------


def test_shared_context_matches_full_context(klap: Klap) -> None:
    klap.add_members(1)
    klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026")
    (case,) = klap.request_cases()
    services = klap.service.services
    now = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)
    with klap.service.database.read() as session:
        _, process = klap.service.catalog.by_version_id(session, case.process_version_id)

    for language in ("da", "en"):
        shared = shared_letter_context(process, services, now, language)
        assert letter_context(case, process, services, now, language, shared=shared) == letter_context(
            case, process, services, now, language
        )


def test_copied_context_shares_no_dict() -> None:
    shared = {
        "authority": {"name": "Miljøstyrelsen"},
        "process": {"id": "p", "legal_basis": [{"title": "Loven"}]},
        "appeal": None,
        "letter_date": "2027-01-05",
    }

    first = copy_shared_context(shared)
    first["authority"]["name"] = "Ændret"
    first["process"]["legal_basis"][0]["title"] = "Ændret"
    first["process"]["legal_basis"].append({"title": "Ny"})
    second = copy_shared_context(shared)

    assert second == shared
    assert shared["authority"] == {"name": "Miljøstyrelsen"}
    assert shared["process"] == {"id": "p", "legal_basis": [{"title": "Loven"}]}


def test_template_that_changes_context_changes_one_letter() -> None:
    renderer = LetterRenderer(
        {"letter.md.j2": "{{ authority.name }}{% if authority.update({'name': 'Ændret'}) %}{% endif %}\n"}, {}
    )
    shared = {"authority": {"name": "Miljøstyrelsen"}, "process": {"legal_basis": []}}

    letters = [renderer.render("letter.md.j2", "Brev", "da", copy_shared_context(shared)) for _ in range(2)]

    assert [letter.text for letter in letters] == ["Miljøstyrelsen\n", "Miljøstyrelsen\n"]


# Templates ----------------------------------------------------------------------------------------


def escape_markdown_in_full(value: str) -> str:
    """Escape text line by line as `escape_markdown` does without its shortcut for one plain line."""
    lines = []
    for line in value.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        escaped = _MARKDOWN_ANYWHERE.sub(r"\\\1", line.strip())
        lines.append(_MARKDOWN_LINE_START.sub(_escape_line_start, escaped))
    return "\n".join(lines)


ESCAPE_CASES = [
    "",
    "Havneselskab nr. 1 A/S",
    "Aarhus Havn",
    "K_101",
    " leading space",
    "trailing space ",
    "\u00a0non-breaking space",
    "tab\tinside",
    "- a list",
    "+ plus",
    "= underline",
    "12. number",
    "3) number",
    "2026",
    "[Klik](http://evil.example)",
    "<b>fed</b> & co",
    "# heading",
    "a | b",
    "~~strike~~",
    "line\nbreak",
    "line\r\nbreak",
    "line\rbreak",
    "line\u2028separator",
    "line\x0bvertical tab",
    "Ærø Kommune, Søndergade 1",
]


@pytest.mark.parametrize("value", ESCAPE_CASES)
def test_escape_markdown_matches_full_escape(value: str) -> None:
    assert escape_markdown(value) == escape_markdown_in_full(value)


def test_escape_markdown_matches_on_random_text() -> None:
    alphabet = "ab1.)-+=_*[]<>&#|~\\` \t\n\r\u00a0æ"
    generator = random.Random(20270105)  # noqa: S311 - a fixed seed for test data, not for secrets
    for _ in range(5000):
        value = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 8)))
        assert escape_markdown(value) == escape_markdown_in_full(value), repr(value)


def test_render_collapses_blank_lines() -> None:
    renderer = LetterRenderer({"letter.md.j2": "Første\n\n\n\n{{ middle }}\n\n\nSidste\n"}, {})

    letter = renderer.render("letter.md.j2", "Brev", "da", {"middle": "Midte"})

    assert letter.markdown == "Første\n\nMidte\n\nSidste\n"


TEMPLATES = [
    "Kære {{ subject_name }}, {{ case.journal_number }}",
    '{% include "skeletons/letters/_header.da.md.j2" %}\n{{ report_year }}',
    '{% extends "skeletons/letters/decision.da.md.j2" %}{% block reasons %}{{ reason }}{% endblock %}',
    "{% set harbour = 'fast' %}{{ harbour }} {{ dumping_site }}",
    "{% for item in items %}{{ item }}{{ loop.index }}{% endfor %}",
    "{% macro line(x) %}{{ x }}{{ suffix }}{% endmacro %}{{ line(name) }}",
]


@pytest.mark.parametrize("source", TEMPLATES)
def test_template_names_cover_analysis(source: str) -> None:
    names = template_names("letter.md.j2", source)
    info = analyse_template("letter.md.j2", source)

    assert info.variables <= names.names
    assert names.referenced == info.referenced


def test_template_names_reject_syntax_error() -> None:
    with pytest.raises(TemplateProblem) as problem:
        template_names("broken.md.j2", "{% if %}")

    assert problem.value.template == "broken.md.j2"


# The INSERT path ----------------------------------------------------------------------------------

_METADATA = MetaData()
_SAMPLE = Table(
    "bulk_sample",
    _METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String(50)),
    Column("at", UtcDateTime()),
    Column("plain_at", DateTime()),
    Column("data", Json),
    Column("note", String(50), default="standard"),
)


def sample_rows() -> list[dict[str, Any]]:
    now = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)
    return [
        {"id": 1, "name": "én", "at": now, "plain_at": datetime(2027, 1, 5), "data": {"a": [1, "ø"]}},
        {"id": 2, "name": None, "at": now, "plain_at": None, "data": None},
        {"id": 3, "name": "tre", "at": None, "plain_at": datetime(2027, 1, 6), "data": {}},
        {"id": 4, "name": "fire", "at": now.astimezone(COPENHAGEN), "plain_at": None, "data": ["x"]},
    ]


@pytest.fixture
def sample_databases(tmp_path: Path) -> Iterator[list[Database]]:
    databases = [Database(f"sqlite:///{tmp_path / name}") for name in ("fast.db", "plain.db")]
    for database in databases:
        _METADATA.create_all(database.engine)
    yield databases
    for database in databases:
        database.dispose()


def raw_rows(database: Database) -> list[tuple[Any, ...]]:
    with database.read() as session:
        return [tuple(row) for row in session.execute(text("SELECT * FROM bulk_sample ORDER BY id"))]


def test_insert_rows_stores_what_sqlalchemy_stores(sample_databases: list[Database]) -> None:
    fast, plain = sample_databases
    rows = [row | {"note": "given"} for row in sample_rows()]

    with fast.write() as session:
        insert_rows(session, _SAMPLE, rows)
    with plain.write() as session:
        session.execute(insert(_SAMPLE), rows)

    assert raw_rows(fast) == raw_rows(plain)
    assert len(raw_rows(fast)) == 4


def test_insert_rows_fills_column_defaults(sample_databases: list[Database]) -> None:
    fast, plain = sample_databases
    rows = sample_rows()

    with fast.write() as session:
        insert_rows(session, _SAMPLE, rows)
    with plain.write() as session:
        session.execute(insert(_SAMPLE), rows)

    assert raw_rows(fast) == raw_rows(plain)
    assert {row[-1] for row in raw_rows(fast)} == {"standard"}


def test_insert_rows_rejects_naive_time(sample_databases: list[Database]) -> None:
    fast, _ = sample_databases
    row = sample_rows()[0] | {"at": datetime(2027, 1, 5, 9, 0), "note": "given"}

    with pytest.raises(Exception, match="naive datetime"), fast.write() as session:
        insert_rows(session, _SAMPLE, [row])


# The member values ---------------------------------------------------------------------------------


def test_request_cases_keep_values_and_key(klap: Klap, monkeypatch: pytest.MonkeyPatch) -> None:
    klap.add_members(5)
    # A request made by hand for the third permit: the bulk run skips it as a duplicate.
    klap.service.submit(CASEWORKER, "klap-aarligt-tilsyn", request_values(permit_row(3)), "da")
    plans: list[RequestPlan] = []
    execute_run = scheme_requests.execute_run

    def capture(*args: Any, **kwargs: Any) -> Any:
        plans.append(args[2].plan)
        return execute_run(*args, **kwargs)

    monkeypatch.setattr(schemes_module, "execute_run", capture)

    report = klap.schemes.run_requests(CASEWORKER, klap.scheme_id, "2026", chunk_size=2)

    assert report.created == 4
    cases = [
        case for case in klap.request_cases() if case.created_by == CASEWORKER.name and case.data.get("scheme_case")
    ]
    assert [case.data["permit_reference"] for case in cases] == [f"KLAP-2024-{index:05d}" for index in (1, 2, 4, 5)]
    for case in cases:
        assert case.duplicate_key == duplicate_key("klap-aarligt-tilsyn", [case.data["permit_reference"], 2026])
        assert case.data["report_year"] == 2026
        assert case.data["scheme_case"] == klap.journal_number
    (plan,) = plans
    # Only the last chunk's skipped member may remain, so the values held never grow with the run.
    assert len(plan._filled) <= 1


def request_values(row: dict[str, Any]) -> dict[str, Any]:
    """Return what a caseworker submits by hand for a permit's request on 2026."""
    return {
        "subject_name": row["applicant_name"],
        "subject_cvr": row["applicant_cvr"],
        "subject_address": row["applicant_address"],
        "subject_postcode": row["applicant_postcode"],
        "subject_city": row["applicant_city"],
        "harbour": row["harbour"],
        "harbour_name": row["harbour_name"],
        "dumping_site": row["dumping_site"],
        "dumping_site_name": row["dumping_site_name"],
        "permitted_volume_m3": row["granted_volume_m3"],
        "permit_valid_until": row["period_end"],
        "report_year": 2026,
        "permit_reference": row["member_key"],
    }
