"""The shape of a document, checked by the pydantic models: keys, types and ids (SF2xx)."""

from __future__ import annotations

import pytest

from tests.definitions.conftest import LoadProcess
from tests.definitions.helpers import DEMO_FILE, HEADER, demo, formatted, single

PROCESS_KEYS = (
    "appeal, application_checks, case_title, classification, description, duplicates, escalation, extends, fee, "
    "field_overrides, fields, "
    "legal_basis, letters, portfolio, process, processing_deadline, roles, scheme, step_deadlines, steps, team, title"
)
STEP_KEYS = (
    "action, approves, checks, deadline, description, eyes, form, id, kind, label, letter, locked, params, required, "
    "role, until, when"
)


def test_unknown_key_with_did_you_mean(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("titel: {da: Demo, en: Demo}\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:8:1: SF200 Unknown key 'titel'. Allowed keys here: {PROCESS_KEYS} (did you mean 'title'?)."
    )
    assert problem.format("da") == (
        f"{DEMO_FILE}:8:1: SF200 Ukendt nøgle 'titel'. Tilladte nøgler her: {PROCESS_KEYS} (mente du 'title'?)."
    )


def test_unknown_key_without_close_match(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("colour: blue\n")))

    assert problem.format("en") == f"{DEMO_FILE}:8:1: SF200 Unknown key 'colour'. Allowed keys here: {PROCESS_KEYS}."


def test_unknown_key_inside_inserted_step(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - insert_after: fact_assessment
            step:
              id: extra
              kind: task
              rol: caseworker
              label: {da: Ekstra, en: Extra}
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:13:7: SF200 Unknown key 'rol'. Allowed keys here: {STEP_KEYS} (did you mean 'role'?)."
    )


def test_missing_key(load_process: LoadProcess) -> None:
    text = HEADER.replace('classification: "01.02.03"\n', "")
    problem = single(load_process(text))

    assert (
        problem.format("en")
        == f"{DEMO_FILE}:1:1: SF201 The key 'classification' is missing. Add 'classification:' here."
    )


def test_missing_language_in_label(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("description: {da: Kun dansk}\n")))

    assert problem.format("en") == f"{DEMO_FILE}:8:14: SF201 The key 'en' is missing. Add 'en:' here."


def test_classification_with_dots_is_text(load_process: LoadProcess) -> None:
    # 09.05.02 has two dots, so YAML cannot read it as a number and keeps the text.
    text = HEADER.replace('classification: "01.02.03"', "classification: 09.05.02")
    loaded = load_process(text)

    assert formatted(loaded) == []
    assert loaded.compiled["demo"].definition.classification == "09.05.02"


def test_number_where_text_is_expected(load_process: LoadProcess) -> None:
    text = HEADER.replace('reference: "§ 1"', "reference: 12")
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:6:16: SF204 'legal_basis.0.reference' must be text, but YAML reads 12 as a number. "
        "Put quotes around the value: '12'."
    )
    assert problem.text.da == "'legal_basis.0.reference' skal være tekst, men YAML læser 12 som et tal."


def test_date_where_text_is_expected(load_process: LoadProcess) -> None:
    text = HEADER.replace('reference: "§ 1"', "reference: 2024-06-14")
    problem = single(load_process(text))

    assert problem.code == "SF204"
    assert problem.text.en == "'legal_basis.0.reference' must be text, but YAML reads 2024-06-14 as a date."


def test_boolean_where_text_is_expected(load_process: LoadProcess) -> None:
    text = HEADER.replace('reference: "§ 1"', "reference: true")
    problem = single(load_process(text))

    assert problem.code == "SF204"
    assert problem.text.en == "'legal_basis.0.reference' must be text, but YAML reads true as a boolean."


def test_expected_text_shows_value_as_written(load_process: LoadProcess) -> None:
    # YAML reads 09.05 as the number 9.05; the message and the hint keep the leading zero.
    text = HEADER.replace('classification: "01.02.03"', "classification: 09.05")
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:7:17: SF204 'classification' must be text, but YAML reads 09.05 as a number. "
        "Put quotes around the value: '09.05'."
    )


@pytest.mark.parametrize(
    ("written", "kind"),
    [
        ("1_000", "a number"),
        ("0x1F", "a number"),
        ("True", "a boolean"),
        ("2024-06-04 10:30:00", "a date"),
        ("1e3", "a number"),
    ],
)
def test_expected_text_keeps_written_form(load_process: LoadProcess, written: str, kind: str) -> None:
    problem = single(load_process(HEADER.replace('reference: "§ 1"', f"reference: {written}")))

    assert problem.text.en == f"'legal_basis.0.reference' must be text, but YAML reads {written} as {kind}."
    assert problem.hint is not None
    assert problem.hint.en == f"Put quotes around the value: '{written}'."


def test_number_key_shown_as_written(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          0x1: {type: text, label: {da: Et, en: One}}
        """
    )
    problem = single(load_process(text))

    assert problem.text.en == "'fields.1' must be text, but YAML reads 0x1 as a number."


def test_quoted_yes_stays_text(load_process: LoadProcess) -> None:
    text = HEADER.replace('reference: "§ 1"', "reference: 'yes'")
    loaded = load_process(text)

    assert formatted(loaded) == []
    assert loaded.compiled["demo"].definition.legal_basis[0].reference == "yes"


def test_unquoted_yes_needs_quotes(load_process: LoadProcess) -> None:
    text = HEADER.replace('reference: "§ 1"', "reference: yes")
    problem = single(load_process(text))

    assert problem.code == "SF112"
    assert problem.location.line == 6


def test_invalid_process_id(load_process: LoadProcess) -> None:
    text = HEADER.replace("process: demo", "process: Demo_1")
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:1:10: SF203 'Demo_1' is not a valid id. "
        "Use lower-case letters a-z, digits and -, starting with a letter."
    )


def test_invalid_field_id(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          Permit-Number:
            type: text
            label: {da: Nummer, en: Number}
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:3: SF203 'Permit-Number' is not a valid id. "
        "Use lower-case letters a-z, digits and _, starting with a letter."
    )


def test_invalid_value(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - insert_after: fact_assessment
            step: {id: extra, kind: robot, label: {da: Ekstra, en: Extra}}
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:10:29: SF202 Invalid value for 'steps.0.step.kind': "
        "the value must be 'task', 'action', 'letter', 'approval', 'hearing', 'party_hearing', 'timer', 'intake' "
        "or 'report'."
    )
    assert problem.format("da") == (
        f"{DEMO_FILE}:10:29: SF202 Ugyldig værdi for 'steps.0.step.kind': "
        "værdien skal være 'task', 'action', 'letter', 'approval', 'hearing', 'party_hearing', 'timer', 'intake' "
        "eller 'report'."
    )


def test_classification_of_wrong_shape(load_process: LoadProcess) -> None:
    text = HEADER.replace('classification: "01.02.03"', 'classification: "1.2.3"')
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:7:17: SF202 Invalid value for 'classification': the value must match the pattern "
        "^\\d{2}\\.\\d{2}\\.\\d{2}$."
    )


def test_all_shape_errors_reported_together(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          count:
            type: integer
            labl: {da: Antal, en: Count}
        steps:
          - remove: Fact
          - remove: 12
        """
    )
    loaded = load_process(text)

    assert [(problem.code, problem.location.line) for problem in loaded.problems] == [
        ("SF201", 10),
        ("SF200", 11),
        ("SF203", 13),
        ("SF204", 14),
    ]
    assert loaded.problems[0].text.en == "The key 'label' is missing."


def test_number_as_mapping_key(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          1: {type: text, label: {da: Et, en: One}}
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:3: SF204 'fields.1' must be text, but YAML reads 1 as a number. "
        "Put quotes around the value: '1'."
    )


def test_quoted_yes_where_boolean_is_meant(load_process: LoadProcess) -> None:
    text = demo(
        """\
        field_overrides:
          applicant_cvr:
            required: 'yes'
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:10:15: SF205 'field_overrides.applicant_cvr.required' must be true or false, not 'yes'. "
        "Write true or false without quotes."
    )


def test_unquoted_no_is_ambiguous(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          country:
            type: enum
            label: {da: Land, en: Country}
            options:
              - {value: NO, label: {da: Norge, en: Norway}}
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:13:17: SF112 The word NO is text here, but YAML 1.1 tools read it as yes/no. "
        "Put quotes around the text: 'NO'. If you mean yes/no, write true or false."
    )


def test_quoted_no_is_text(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          country:
            type: enum
            label: {da: Land, en: Country}
            options:
              - {value: 'NO', label: {da: Norge, en: Norway}}
        """
    )

    assert formatted(load_process(text)) == []
