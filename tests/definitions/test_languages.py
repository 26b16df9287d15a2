"""Problem messages in Danish: details written by Sagsflow are translated, not left in English."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.definitions.conftest import LoadProcess
from tests.definitions.helpers import HEADER, demo, edit_skeleton, formatted, write

# Words that occur in the English details and never in the Danish ones.
ENGLISH = re.compile(r"\b(the|must|does|is|are|not|needs|apply|applies|only|cannot|has|of|be)\b")


def step(lines: str, after: str = "fact_assessment") -> str:
    """Return a `steps:` section inserting a step given as YAML lines indented by 6."""
    return f"steps:\n  - insert_after: {after}\n    step:\n{lines}"


FIELD_CASES = {
    "option of other type": "fields:\n  count: {type: integer, label: {da: A, en: B}, pattern: 'x'}\n",
    "pattern": "fields:\n  code: {type: text, label: {da: A, en: B}, pattern: '('}\n",
    "lengths": "fields:\n  code: {type: text, label: {da: A, en: B}, min_length: 5, max_length: 2}\n",
    "bounds": "fields:\n  count: {type: integer, label: {da: A, en: B}, min: 5, max: 2}\n",
    "whole bound": "fields:\n  count: {type: integer, label: {da: A, en: B}, min: 1.5}\n",
    "date bounds": "fields:\n  day: {type: date, label: {da: A, en: B}, min: 1}\n",
    "enum without options": "fields:\n  kind: {type: enum, label: {da: A, en: B}}\n",
    "repeated options": (
        "fields:\n  kind:\n    type: enum\n    label: {da: A, en: B}\n    options:\n"
        "      - {value: a, label: {da: A, en: A}}\n      - {value: a, label: {da: A, en: A}}\n"
    ),
    "required caseworker field": "field_overrides:\n  assessment_note: {required: true}\n",
    "loosened field": "field_overrides:\n  applicant_name: {required: false}\n",
    "deadline unit": "processing_deadline: {value: 6, unit: fortnights, rule: lax}\n",
    "misplaced key": step(
        "      id: extra\n      kind: letter\n      letter: receipt\n      role: caseworker\n"
        "      label: {da: A, en: B}\n"
    ),
    "missing key": step("      id: extra\n      kind: task\n      label: {da: A, en: B}\n"),
    "system field in form": step(
        "      id: extra\n      kind: task\n      role: caseworker\n      label: {da: A, en: B}\n"
        "      form:\n        - field: applicant_register_name\n"
    ),
    "approval of action": step(
        "      id: extra\n      kind: approval\n      role: approver\n      eyes: 4\n"
        "      approves: applicant_lookup\n      label: {da: A, en: B}\n",
        after="receipt_letter",
    ),
    "action params": step(
        "      id: extra\n      kind: action\n      action: cvr_lookup\n      label: {da: A, en: B}\n"
        "      params: {field: applicant_name, name_field: applicant_city, status_field: 3, colour: red}\n"
    ),
    "pattern of classification": 'classification: "1.2"\n',
    "value of kind": step("      id: extra\n      kind: robot\n      label: {da: A, en: B}\n"),
}


@pytest.mark.parametrize("extra", FIELD_CASES.values(), ids=FIELD_CASES.keys())
def test_danish_message_has_no_english_detail(load_process: LoadProcess, extra: str) -> None:
    text = demo(extra)
    if extra.startswith("classification"):
        text = HEADER.replace('classification: "01.02.03"\n', extra)
    loaded = load_process(text)

    assert loaded.problems, "expected at least one problem"
    for problem in loaded.problems:
        danish = problem.format("da")
        assert not ENGLISH.search(danish), danish
        assert danish != problem.format("en")


def test_danish_phase_and_letter_details(root: Path, load_process: LoadProcess) -> None:
    edit_skeleton(
        root,
        "  - id: closed\n    label: {da: Afsluttet, en: Closed}\n    final: true",
        "  - id: closed\n    label: {da: Afsluttet, en: Closed}\n    final: true\n    next: [{to: receipt}]",
    )
    write(root, "processes/afgoerelse/demo/decision.da.md.j2", "# Afgørelse\n")
    loaded = load_process(demo("letters:\n  decision:\n    template: {da: demo/decision.da.md.j2}\n"))

    assert {problem.code for problem in loaded.problems} >= {"SF313", "SF320"}, formatted(loaded)
    for problem in loaded.problems:
        danish = problem.format("da")
        assert not ENGLISH.search(danish), danish
