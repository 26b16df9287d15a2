"""Guards: names, step outcomes, Python internals and impossible comparisons (SF302, SF306, SF307, SF332)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.definitions.loader import load_definitions
from tests.definitions.conftest import LoadProcess
from tests.definitions.helpers import DEMO_FILE, HEADER, SKELETON_FILE, demo, edit_skeleton, formatted, write

# Adds an integer and a date field to the demo process, and a task whose `when` is the
# guard under test, on line 21, column 13.
GUARDED = """\
fields:
  quantity:
    type: integer
    label: {{da: Antal, en: Quantity}}
  permit_expiry:
    type: date
    label: {{da: Udløb, en: Expiry}}
steps:
  - insert_after: fact_assessment
    step:
      id: extra
      kind: task
      role: caseworker
      when: "{guard}"
      label: {{da: A, en: B}}
"""
GUARD_LOCATION = f"{DEMO_FILE}:21:13"


def guarded(guard: str) -> str:
    return demo(GUARDED.format(guard=guard))


def test_bare_unknown_name_is_reported(load_process: LoadProcess) -> None:
    loaded = load_process(guarded("aplication_complete"))

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [("SF306", GUARD_LOCATION)]
    assert loaded.problems[0].text.en == "The field 'aplication_complete' does not exist."


def test_private_key_lookup_is_rejected(load_process: LoadProcess) -> None:
    loaded = load_process(guarded("outcome['__len__'] == 1"))

    assert [(problem.code, problem.text.en) for problem in loaded.problems] == [
        (
            "SF307",
            "The expression 'outcome['__len__'] == 1' is not valid: '__len__' starts with an underscore, and "
            "internal Python attributes are not available.",
        )
    ]


def test_empty_guard_in_danish(load_process: LoadProcess) -> None:
    loaded = load_process(guarded(" "))

    assert [problem.text.da for problem in loaded.problems] == ["Udtrykket ' ' er ugyldigt: udtrykket er tomt."]


def test_enum_value_that_is_not_an_option(load_process: LoadProcess) -> None:
    loaded = load_process(guarded("decision_outcome == 'Refused'"))

    assert formatted(loaded) == [
        f"{GUARD_LOCATION}: SF332 warning: In the condition 'decision_outcome == 'Refused'', the field "
        "'decision_outcome' can never equal 'Refused': 'Refused' is not one of the field's options (granted, "
        "partially_granted, refused). Use one of the options granted, partially_granted, refused; upper and lower "
        "case differ."
    ]
    assert loaded.problems[0].format("da") == (
        f"{GUARD_LOCATION}: SF332 advarsel: I betingelsen 'decision_outcome == 'Refused'' kan feltet "
        "'decision_outcome' aldrig være lig med 'Refused': 'Refused' er ikke en af feltets værdier (granted, "
        "partially_granted, refused). Brug en af værdierne granted, partially_granted, refused; store og små "
        "bogstaver er forskellige."
    )
    assert loaded.errors == []
    assert sorted(loaded.compiled) == ["demo"]


def test_postcode_compared_with_number(load_process: LoadProcess) -> None:
    loaded = load_process(guarded("applicant_postcode == 8600"))

    assert [problem.code for problem in loaded.problems] == ["SF332"]
    assert loaded.problems[0].text.en.endswith(
        "can never equal 8600: a field of type postcode contains text, not a number."
    )
    assert loaded.problems[0].hint is not None
    assert loaded.problems[0].hint.en == "Put quotes around the value: '8600'."


@pytest.mark.parametrize(
    ("guard", "value", "detail"),
    [
        ("quantity == '5'", "'5'", "a field of type integer contains a number, not text"),
        ("'5' != quantity", "'5'", "a field of type integer contains a number, not text"),
        ("application_complete == 'true'", "'true'", "a field of type boolean is true or false, not text"),
        ("applicant_name == true", "true", "a field of type text contains text, not true or false"),
        ("decision_outcome == 1", "1", "a field of type enum contains text, not a number"),
        (
            "permit_expiry == '2026-01-01'",
            "'2026-01-01'",
            "a field of type date contains a date, and a date never equals text or a number",
        ),
        ("applicant_postcode != -1", "-1", "a field of type postcode contains text, not a number"),
    ],
)
def test_constant_of_wrong_kind(load_process: LoadProcess, guard: str, value: str, detail: str) -> None:
    loaded = load_process(guarded(guard))

    assert [problem.code for problem in loaded.problems] == ["SF332"], formatted(loaded)
    assert f"can never equal {value}: {detail}." in loaded.problems[0].text.en


def test_list_membership_reports_each_impossible_value(load_process: LoadProcess) -> None:
    loaded = load_process(guarded("decision_outcome in ['granted', 'denied'] and decision_outcome not in ('x',)"))

    assert [problem.text.en.split(": ")[0] for problem in loaded.problems] == [
        "In the condition 'decision_outcome in ['granted', 'denied'] and decision_outcome not in ('x',)', the field "
        "'decision_outcome' can never equal 'denied'",
        "In the condition 'decision_outcome in ['granted', 'denied'] and decision_outcome not in ('x',)', the field "
        "'decision_outcome' can never equal 'x'",
    ]


@pytest.mark.parametrize(
    "guard",
    [
        "decision_outcome == 'refused'",
        "decision_outcome != none",
        "applicant_postcode == '8600'",
        "quantity >= 10 and quantity != 3",
        "application_complete == true",
        "permit_expiry < today",
        "decision_outcome in ['granted', 'partially_granted']",
        "outcome.decision_approval == 'approved'",
        "applicant_name == decision_text",
    ],
)
def test_comparisons_that_can_match(load_process: LoadProcess, guard: str) -> None:
    assert formatted(load_process(guarded(guard))) == []


def test_quote_hint_uses_written_constant(load_process: LoadProcess) -> None:
    loaded = load_process(guarded("applicant_name != false"))

    assert [problem.code for problem in loaded.problems] == ["SF332"]
    assert loaded.problems[0].hint is not None
    assert loaded.problems[0].hint.en == "Put quotes around the value: 'false'."


# Step outcomes ------------------------------------------------------------------------------


def test_unknown_step_in_outcome(load_process: LoadProcess) -> None:
    loaded = load_process(guarded("outcome.decison_approval == 'approved'"))

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [("SF302", GUARD_LOCATION)]
    problem = loaded.problems[0]
    assert problem.text.en == "The step 'decison_approval' does not exist."
    assert problem.hint is not None
    assert problem.hint.en.endswith("(did you mean 'decision_approval'?).")
    assert problem.hint.da.endswith("(mente du 'decision_approval'?).")
    assert loaded.compiled == {}


def test_unknown_step_in_outcome_key_lookup(load_process: LoadProcess) -> None:
    loaded = load_process(guarded("outcome['Completeness_check'] == 'done'"))

    assert [problem.code for problem in loaded.problems] == ["SF302"]
    assert loaded.problems[0].hint is not None
    assert "(did you mean 'completeness_check'?)" in loaded.problems[0].hint.en


def test_outcome_of_inserted_step_is_known(load_process: LoadProcess) -> None:
    # The guarded step is itself inserted by the process, and may read the outcome of a step before it.
    assert formatted(load_process(guarded("outcome.extra != 'skipped' or outcome.applicant_lookup == 'found'"))) == []


OUTCOME_PLACES = {
    "required_if": """\
        steps:
          - insert_after: fact_assessment
            step:
              id: extra
              kind: task
              role: caseworker
              label: {da: A, en: B}
              form:
                - field: conditions
                  required_if: "outcome.aplicant_lookup == 'found'"
        """,
    "checks": """\
        steps:
          - insert_after: fact_assessment
            step:
              id: extra
              kind: task
              role: caseworker
              label: {da: A, en: B}
              checks:
                - rule: "outcome.aplicant_lookup == 'found'"
                  message: {da: A, en: B}
        """,
    "application_checks": """\
        application_checks:
          - rule: "outcome.aplicant_lookup == 'found'"
            message: {da: A, en: B}
        """,
}


@pytest.mark.parametrize("place", sorted(OUTCOME_PLACES))
def test_unknown_outcome_step_in_each_guard(load_process: LoadProcess, place: str) -> None:
    problems = load_process(demo(OUTCOME_PLACES[place])).problems

    assert [(problem.code, problem.text.en) for problem in problems] == [
        ("SF302", "The step 'aplicant_lookup' does not exist.")
    ]


APPROVAL_OUTCOMES = (
    "the step 'decision_approval' is of kind approval, whose outcomes are approved, rejected, skipped or active"
)


@pytest.mark.parametrize(
    ("guard", "subject", "value", "detail", "example"),
    [
        ("outcome.decision_approval == 'approve'", "decision_approval", "'approve'", APPROVAL_OUTCOMES, "approved"),
        (
            "outcome['completeness_check'] == 'approved'",
            "completeness_check",
            "'approved'",
            "the step 'completeness_check' is of kind task, whose outcomes are done, skipped or active",
            "done",
        ),
        (
            "'done' == outcome.receipt_letter",
            "receipt_letter",
            "'done'",
            "the step 'receipt_letter' is of kind letter, whose outcomes are sent, skipped or active",
            "sent",
        ),
        (
            "outcome.applicant_lookup in ['found', 'missing']",
            "applicant_lookup",
            "'missing'",
            "the step 'applicant_lookup' runs the action cvr_lookup, whose outcomes are found, not_found, ceased, "
            "not_applicable, skipped or active",
            "found",
        ),
        ("outcome.decision_approval == true", "decision_approval", "true", APPROVAL_OUTCOMES, "approved"),
    ],
)
def test_outcome_that_step_never_has(
    load_process: LoadProcess, guard: str, subject: str, value: str, detail: str, example: str
) -> None:
    loaded = load_process(guarded(guard))

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [("SF332", GUARD_LOCATION)]
    problem = loaded.problems[0]
    assert problem.text.en == f"In the condition '{guard}', outcome.{subject} can never equal {value}: {detail}."
    assert problem.hint is not None
    assert problem.hint.en == f"Compare with one of the outcomes, e.g. outcome.{subject} == '{example}'."
    assert loaded.errors == []


def test_outcome_comparison_in_danish(load_process: LoadProcess) -> None:
    loaded = load_process(guarded("outcome.decision_approval == 'godkendt'"))

    assert [problem.text.da for problem in loaded.problems] == [
        "I betingelsen 'outcome.decision_approval == 'godkendt'' kan outcome.decision_approval aldrig være lig med "
        "'godkendt': trinnet 'decision_approval' er af typen approval, og dets udfald er approved, rejected, "
        "skipped eller active."
    ]


@pytest.mark.parametrize(
    "guard",
    [
        "outcome.decision_approval == 'rejected'",
        "outcome.completeness_check == 'skipped'",
        "outcome.completeness_check != 'active'",
        "outcome.applicant_lookup in ['ceased', 'not_applicable']",
        "outcome.receipt_letter == 'sent'",
        "outcome.decision_approval == none",
    ],
)
def test_outcomes_that_can_occur(load_process: LoadProcess, guard: str) -> None:
    assert formatted(load_process(guarded(guard))) == []


def test_unknown_outcome_step_in_transition(root: Path) -> None:
    edit_skeleton(root, "outcome.decision_approval == 'approved'", "outcome.decison_approval == 'approved'")
    write(root, DEMO_FILE, HEADER)
    loaded = load_definitions(root)

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [
        ("SF302", f"{SKELETON_FILE}:323:15")
    ]
    assert loaded.problems[0].hint is not None
    assert loaded.problems[0].hint.en.endswith("(did you mean 'decision_approval'?).")
    assert loaded.compiled == {}
