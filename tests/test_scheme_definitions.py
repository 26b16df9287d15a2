"""The `scheme:` section of a process (SF340 to SF343), the `report` step kind, and cached letter parts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.definitions.loader import LoadedDefinitions, load_definitions
from engine.definitions.plaintext import plain_blocks
from engine.definitions.templates import _MARKDOWN, BlockCache, LetterRenderer, _plain_paragraph
from tests.definitions.helpers import formatted, write
from tests.helpers import REPOSITORY

SKELETON = """\
skeleton: sag
title: {da: Sag, en: Case}
roles: {caseworker: {label: {da: Sagsbehandler, en: Caseworker}}}
intake_roles: [caseworker]
party: {name: holder, cvr: holder_cvr}
fields:
  holder: {type: text, label: {da: Indehaver, en: Holder}, required: true}
  holder_cvr: {type: cvr, label: {da: CVR, en: CVR}}
  volume: {type: integer, label: {da: Mængde, en: Volume}}
  grade: {type: enum, label: {da: Klasse, en: Grade}, options: [{value: a, label: {da: A, en: A}}]}
  until: {type: date, label: {da: Til, en: Until}}
letters:
  request: {label: {da: Anmodning, en: Request}, template: {da: letters/request.da.md.j2}}
phases:
  - id: start
    label: {da: Start, en: Start}
    steps:
      - {id: work, kind: task, role: caseworker, label: {da: Arbejd, en: Work}}
    next: [{to: done}]
  - id: done
    label: {da: Færdig, en: Done}
    final: true
"""

BASIS = """\
legal_basis: [{title: {da: Lov, en: Act}, reference: "§ 1"}]
classification: "01.02.03"
"""

PERMIT = f"""\
process: permit
extends: sag
title: {{da: Tilladelse, en: Permit}}
{BASIS}fields:
  kinds:
    type: enum
    label: {{da: Slags, en: Kinds}}
    options: [{{value: a, label: {{da: A, en: A}}}}, {{value: b, label: {{da: B, en: B}}}}]
"""

YEARLY = f"""\
process: yearly
extends: sag
title: {{da: Årlig, en: Yearly}}
{BASIS}fields:
  year: {{type: integer, label: {{da: År, en: Year}}}}
  reference: {{type: text, label: {{da: Reference, en: Reference}}}}
  scheme_reference: {{type: text, source: system, label: {{da: Ordning, en: Scheme}}}}
  reported: {{type: integer, source: caseworker, label: {{da: Indberettet, en: Reported}}}}
steps:
  - insert_before: work
    step:
      id: report
      kind: report
      label: {{da: Indberetning, en: Report}}
      deadline: {{value: 4, unit: weeks}}
      form: [{{field: reported, required: true}}]
  - insert_after: report
    step: {{id: request_letter, kind: letter, letter: request, label: {{da: Send, en: Send}}}}
  - remove: work
"""

SCHEME = f"""\
process: scheme
extends: ordningssag
title: {{da: Ordning, en: Scheme}}
{BASIS}scheme:
  members: permit
  requests: yearly
  fields:
    holder: holder
    holder_cvr: holder_cvr
    volume: volume
  period: year
  period_field: year
  member_field: reference
  scheme_field: scheme_reference
  reply_by: {{month: 2, day: 1}}
"""
SCHEME_FILE = "processes/ordningssag/scheme.yaml"


@pytest.fixture
def scheme_root(tmp_path: Path) -> Path:
    write(tmp_path, "skeletons/sag.yaml", SKELETON)
    shutil.copy(REPOSITORY / "skeletons" / "ordningssag.yaml", tmp_path / "skeletons" / "ordningssag.yaml")
    write(tmp_path, "skeletons/letters/request.da.md.j2", "Kære {{ holder }}\n")
    write(tmp_path, "processes/sag/permit.yaml", PERMIT)
    write(tmp_path, "processes/sag/yearly.yaml", YEARLY)
    write(tmp_path, SCHEME_FILE, SCHEME)
    return tmp_path


def load_with(root: Path, old: str = "", new: str = "", *, file: str = SCHEME_FILE) -> LoadedDefinitions:
    path = root / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1 or not old, old
    path.write_text(text.replace(old, new) if old else text, encoding="utf-8")
    return load_definitions(root)


def test_valid_scheme_compiles(scheme_root: Path) -> None:
    loaded = load_with(scheme_root)

    assert formatted(loaded) == []
    scheme = loaded.compiled["scheme"].definition.scheme
    assert scheme is not None
    assert (scheme.members, scheme.requests, scheme.reply_by.month) == ("permit", "yearly", 2)


def test_variant_inherits_the_scheme(scheme_root: Path) -> None:
    text = "process: scheme-variant\nextends: scheme\ntitle: {da: Variant, en: Variant}\n"
    write(scheme_root, "processes/ordningssag/variant.yaml", text)

    loaded = load_with(scheme_root)

    assert formatted(loaded) == []
    assert loaded.compiled["scheme-variant"].definition.scheme == loaded.compiled["scheme"].definition.scheme


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "members: permit",
            "members: permits",
            "processes/ordningssag/scheme.yaml:7:12: SF340 The process 'permits' that 'scheme.members' names does "
            "not exist. Known processes: permit, yearly (did you mean 'permit'?).",
        ),
        (
            "requests: yearly",
            "requests: scheme",
            "processes/ordningssag/scheme.yaml:8:13: SF343 The scheme cannot be used: 'scheme.requests' names the "
            "scheme's own process 'scheme'.",
        ),
        (
            "    volume: volume\n",
            "    volume: volume\n    size: volume\n",
            "processes/ordningssag/scheme.yaml:13:5: SF341 The field 'size' does not exist in the process 'yearly' "
            "(the requests' process, scheme.requests).",
        ),
        (
            "holder_cvr: holder_cvr",
            "holder_cvr: holder_vat",
            "processes/ordningssag/scheme.yaml:11:17: SF341 The field 'holder_vat' does not exist in the process "
            "'permit' (the members' process, scheme.members).",
        ),
        (
            "volume: volume",
            "volume: until",
            "processes/ordningssag/scheme.yaml:12:13: SF342 The scheme's field 'volume': the field has type "
            "integer, but the members' field has type date.",
        ),
        (
            "volume: volume",
            "volume: volume\n    grade: kinds",
            "processes/ordningssag/scheme.yaml:13:12: SF342 The scheme's field 'grade': the members' field has the "
            "options b, which the field lacks.",
        ),
        (
            "period_field: year",
            "period_field: reference",
            "processes/ordningssag/scheme.yaml:14:17: SF342 The scheme's field 'reference': 'scheme.period_field' "
            "must name a field of type integer, but 'reference' has type text.",
        ),
        (
            "    holder: holder\n",
            "",
            "processes/ordningssag/scheme.yaml:9:3: SF343 The scheme cannot be used: the requests do not get the "
            "fields holder, which the process 'yearly' requires.",
        ),
        (
            "reply_by: {month: 2, day: 1}",
            "reply_by: {month: 2, day: 29}",
            "processes/ordningssag/scheme.yaml:17:29: SF343 The scheme cannot be used: day 29 of month 2 does not "
            "exist every year.",
        ),
    ],
)
def test_scheme_problems(scheme_root: Path, old: str, new: str, expected: str) -> None:
    loaded = load_with(scheme_root, old, new)

    problems = [problem for problem in formatted(loaded) if problem.startswith(SCHEME_FILE)]
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)
    assert "scheme" not in loaded.compiled


def test_scheme_text_field_takes_values_stored_as_text(scheme_root: Path) -> None:
    loaded = load_with(scheme_root, "    volume: volume\n", "    volume: volume\n    reference: holder_cvr\n")

    assert formatted(loaded) == []


def test_request_process_needs_its_report_step_first(scheme_root: Path) -> None:
    yearly = "processes/sag/yearly.yaml"
    load_with(scheme_root, "  - insert_before: work\n", "  - insert_after: work\n", file=yearly)
    path = scheme_root / yearly
    path.write_text(path.read_text(encoding="utf-8").replace("  - remove: work\n", ""), encoding="utf-8")

    loaded = load_definitions(scheme_root)

    (problem,) = [problem for problem in formatted(loaded) if problem.startswith(SCHEME_FILE)]
    assert problem == (
        "processes/ordningssag/scheme.yaml:8:13: SF343 The scheme cannot be used: the first phase of 'yearly' may "
        "only have report and letter steps, but has work (task). Move the steps to a later phase, or remove them."
    )


def test_request_process_without_report_step(scheme_root: Path) -> None:
    loaded = load_with(scheme_root, "kind: report", "kind: timer", file="processes/sag/yearly.yaml")

    assert any("must have exactly one report step (kind: report)" in problem for problem in formatted(loaded))


# The report step kind --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "detail"),
    [
        ("      deadline: {value: 4, unit: weeks}\n", "", "a step of kind 'report' needs 'deadline'"),
        ("      form: [{field: reported, required: true}]\n", "", "a step of kind 'report' needs 'form'"),
        ("      kind: report\n", "      kind: report\n      role: caseworker\n", "'role' does not apply"),
        ("      kind: report\n", "      kind: report\n      required: false\n", "a report step must be required"),
    ],
)
def test_report_step_problems(scheme_root: Path, old: str, new: str, detail: str) -> None:
    loaded = load_with(scheme_root, old, new, file="processes/sag/yearly.yaml")

    problems = [problem for problem in formatted(loaded) if " SF315 " in problem]
    assert len(problems) == 1, formatted(loaded)
    assert detail in problems[0]


def test_report_outcomes_are_known_to_guards(scheme_root: Path) -> None:
    text = "    step: {id: request_letter, kind: letter, letter: request, when: \"outcome.report == 'sent'\","
    loaded = load_with(
        scheme_root,
        "    step: {id: request_letter, kind: letter, letter: request,",
        text,
        file="processes/sag/yearly.yaml",
    )

    (problem,) = [problem for problem in formatted(loaded) if " SF332 " in problem]
    assert "whose outcomes are submitted, deadline_passed, skipped or active" in problem


# Cached letter parts -----------------------------------------------------------------------------------

_LINES = st.sampled_from(
    [
        "Et afsnit med *fremhævning* og **fed** tekst.",
        "Linje med hårdt linjeskift  ",
        "# Overskrift",
        "## Underoverskrift",
        "- punkt",
        "- punkt med [link](http://example.com)",
        "  fortsat punkt",
        "1. nummer",
        "2) nummer",
        "    kode",
        "> citat",
        "| a | b |",
        "|---|---|",
        "| 1 | 2 |",
        "---",
        "===",
        "***",
        "Tekst\\_med\\*escapes",
        "<http://127.0.0.1:8000/report-replies/REDACTED>",
        "10.001 m³ i 2026.",
        "3.-21. marts",
        "-5 grader",
        "",
        "",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_LINES, min_size=1, max_size=12), min_size=1, max_size=4))
def test_cached_parts_render_as_whole_letters(letters: list[list[str]]) -> None:
    renderer = LetterRenderer({"letter.md.j2": "{{ body }}"}, {})
    blocks = BlockCache(max_entries=8)

    for lines in letters:
        context = {"body": "\n".join(lines)}
        whole = renderer.render("letter.md.j2", "Brev", "da", context)
        cached = renderer.render("letter.md.j2", "Brev", "da", context, blocks)
        assert (cached.text, cached.html) == (whole.text, whole.html)


def test_letter_with_a_fence_is_not_cut() -> None:
    assert BlockCache().convert("```\nkode\n\nmere\n```\n") is None
    assert BlockCache().convert("Se [her][1].\n\n[1]: http://example.com\n") is None


# Mostly text that is a plain paragraph, with the characters and escapes that decide whether it is one.
_PLAIN_TEXT = st.lists(
    st.sampled_from(
        [
            *"abcæøåAZÉ09 .,;:-+=#|~!?'\"()/%$@^{}«»*_`[]<>&\t",
            *("\\_", "\\*", "\\&", "\\\\", "\\-", "\\#", "\\[", "\\a", "1. ", "2) ", "http://x.dk/a?b=c"),
        ]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(_PLAIN_TEXT, st.sampled_from(["", " ", "  ", "   "])), min_size=1, max_size=4))
def test_plain_paragraph_matches_markdown_it(lines: list[tuple[str, str]]) -> None:
    part = "\n".join(text + spaces for text, spaces in lines)
    fast = _plain_paragraph(part)
    tokens = _MARKDOWN.parse(part)

    if fast is not None:
        assert fast == (_MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {}), plain_blocks(tokens))


def test_plain_paragraph_takes_the_letter_header() -> None:
    assert _plain_paragraph("Havneselskab nr. 1 A/S  \nHavnevej 1  \n8000 Aarhus C") is not None
    assert _plain_paragraph("5. januar 2027") is None
    assert _plain_paragraph("*fremhævet*") is None
