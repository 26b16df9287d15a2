"""Extending a skeleton: where changes land, what they leave alone, and the origin they record."""

from __future__ import annotations

from pathlib import Path

from engine.definitions.loader import LoadedDefinitions, load_definitions
from engine.definitions.model import ResolvedProcess
from tests.definitions.conftest import LoadProcess
from tests.definitions.helpers import demo, formatted, write
from tests.helpers import CITES_IMPORT, REPOSITORY


def resolved(loaded: LoadedDefinitions, process: str = "demo") -> ResolvedProcess:
    assert formatted(loaded) == []
    definition = loaded.resolutions[process].process
    assert definition is not None
    return definition


def step_ids(process: ResolvedProcess, phase: str) -> list[str]:
    return [step.id for found in process.phases if found.id == phase for step in found.steps]


def test_insert_after_places_step_after_anchor(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - insert_after: applicant_lookup
            step: {id: permit_check, kind: task, role: caseworker, label: {da: Tjek, en: Check}}
        """
    )
    process = resolved(load_process(text))

    assert step_ids(process, "fact_finding") == ["applicant_lookup", "permit_check", "fact_assessment"]


def test_insert_before_places_step_before_anchor(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - insert_before: draft_decision
            step: {id: legal_review, kind: task, role: caseworker, label: {da: Jura, en: Legal review}}
        """
    )
    process = resolved(load_process(text))

    assert step_ids(process, "draft") == ["legal_review", "draft_decision"]


def test_insert_after_step_inserted_earlier(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - insert_after: applicant_lookup
            step: {id: first_check, kind: task, role: caseworker, label: {da: A, en: A}}
          - insert_after: first_check
            step: {id: second_check, kind: task, role: caseworker, label: {da: B, en: B}}
        """
    )
    process = resolved(load_process(text))

    assert step_ids(process, "fact_finding") == ["applicant_lookup", "first_check", "second_check", "fact_assessment"]


def test_replace_swaps_step_in_place(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - replace: closing_check
            step:
              id: closing_check
              kind: task
              role: approver
              label: {da: Afslut sagen, en: Close the case}
        """
    )
    process = resolved(load_process(text))
    step = next(step for phase in process.phases for step in phase.steps if step.id == "closing_check")

    assert step_ids(process, "closing") == ["closing_check"]
    assert step.role == "approver"
    assert step.form == []
    assert step.origin == "process"


def test_replace_with_new_id(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - replace: consultation
            step: {id: consultation_meeting, kind: task, role: caseworker, label: {da: Møde, en: Meeting}}
        """
    )
    process = resolved(load_process(text))

    assert step_ids(process, "hoering") == ["consultation_meeting"]


def test_remove_drops_step(load_process: LoadProcess) -> None:
    process = resolved(load_process(demo("steps:\n  - remove: applicant_lookup\n")))

    assert step_ids(process, "fact_finding") == ["fact_assessment"]
    assert "applicant_lookup" not in {step.id for phase in process.phases for step in phase.steps}


def test_field_override_tightens_required(load_process: LoadProcess) -> None:
    process = resolved(load_process(demo("field_overrides:\n  applicant_cvr:\n    required: true\n")))
    field = process.fields["applicant_cvr"]

    assert field.required is True
    assert field.type == "cvr"
    assert field.label.en == "CVR number"
    assert field.origin == "changed"


def test_field_override_relabels_field(load_process: LoadProcess) -> None:
    text = demo(
        """\
        field_overrides:
          applicant_name:
            label: {da: Virksomhedens navn, en: Company name}
        """
    )
    loaded = load_process(text)
    field = resolved(loaded).fields["applicant_name"]

    assert field.label.en == "Company name"
    assert field.label.da == "Virksomhedens navn"
    assert field.required is True
    # The field's JSON schema reads `label.da`, so the override must keep `label` a Label model, not a dict.
    assert loaded.compiled["demo"].field_types["applicant_name"].json_schema(field)["title"] == "Virksomhedens navn"


def test_letter_override_changes_only_template(root: Path, load_process: LoadProcess) -> None:
    write(root, "processes/afgoerelse/demo/receipt.da.md.j2", "Kvittering til {{ applicant_name }}\n")
    text = demo("letters:\n  receipt:\n    template: {da: demo/receipt.da.md.j2}\n")
    process = resolved(load_process(text))
    receipt = process.letters["receipt"]

    assert receipt.templates == {"da": "processes/afgoerelse/demo/receipt.da.md.j2"}
    assert receipt.label.en == "Acknowledgement of receipt"
    assert receipt.locked is False
    assert receipt.origin == "changed"
    assert process.letters["decision"].origin == "skeleton"
    assert process.letters["decision"].templates == {
        "da": "skeletons/letters/decision.da.md.j2",
        "en": "skeletons/letters/decision.en.md.j2",
    }


def test_locked_letter_keeps_skeleton_as_base(root: Path, load_process: LoadProcess) -> None:
    write(
        root,
        "processes/afgoerelse/demo/decision.da.md.j2",
        '{% extends "skeletons/letters/decision.da.md.j2" %}\n{% block title %}Demo{% endblock %}\n',
    )
    text = demo("letters:\n  decision:\n    template: {da: demo/decision.da.md.j2}\n")
    decision = resolved(load_process(text)).letters["decision"]

    assert decision.locked is True
    assert decision.locked_blocks == ["reasons", "complaint_notice"]
    assert decision.base_templates["da"] == "skeletons/letters/decision.da.md.j2"
    assert decision.origin == "changed"


def test_new_letter_from_process(root: Path, load_process: LoadProcess) -> None:
    write(root, "processes/afgoerelse/demo/reminder.da.md.j2", "Påmindelse, {{ case.journal_number }}\n")
    text = demo(
        """\
        letters:
          reminder:
            label: {da: Påmindelse, en: Reminder}
            template: {da: demo/reminder.da.md.j2}
        steps:
          - insert_after: closing_check
            step: {id: reminder_letter, kind: letter, letter: reminder, label: {da: Påmind, en: Remind}}
        """
    )
    reminder = resolved(load_process(text)).letters["reminder"]

    assert reminder.origin == "process"
    assert reminder.locked is False
    assert reminder.templates == {"da": "processes/afgoerelse/demo/reminder.da.md.j2"}


def test_step_deadline_sets_deadline(load_process: LoadProcess) -> None:
    text = demo("step_deadlines:\n  consultation: {value: 10, unit: working_days}\n")
    process = resolved(load_process(text))
    step = next(step for phase in process.phases for step in phase.steps if step.id == "consultation")

    assert step.deadline is not None
    assert (step.deadline.value, step.deadline.unit, step.deadline.rule) == (10, "working_days", "standard")
    assert step.origin == "changed"


def test_step_deadline_replaces_skeleton_deadline(load_process: LoadProcess) -> None:
    text = demo("step_deadlines:\n  information_received: {value: 21, unit: calendar_days}\n")
    process = resolved(load_process(text))
    step = next(step for phase in process.phases for step in phase.steps if step.id == "information_received")

    assert step.deadline is not None
    assert step.deadline.value == 21


def test_origin_of_fields_and_steps(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          permit_number:
            type: text
            label: {da: Nummer, en: Number}
        steps:
          - insert_after: fact_assessment
            step: {id: permit_check, kind: task, role: caseworker, label: {da: Tjek, en: Check}}
        """
    )
    process = resolved(load_process(text))
    origins = {step.id: step.origin for phase in process.phases for step in phase.steps}

    assert process.fields["permit_number"].origin == "process"
    assert process.fields["applicant_name"].origin == "skeleton"
    assert origins["permit_check"] == "process"
    assert origins["fact_assessment"] == "skeleton"


def test_process_values_replace_skeleton_values(load_process: LoadProcess) -> None:
    text = demo("processing_deadline: {value: 3, unit: months}\ncase_title: 'Demo {{ applicant_name }}'\n")
    process = resolved(load_process(text))

    assert process.processing_deadline is not None
    assert (process.processing_deadline.value, process.processing_deadline.unit) == (3, "months")
    assert process.case_title == "Demo {{ applicant_name }}"
    assert process.appeal is not None
    assert process.appeal.deadline.value == 4


def test_cites_import_extends_fact_finding() -> None:
    process = resolved(load_definitions(REPOSITORY, [REPOSITORY / CITES_IMPORT]), "cites-import")

    assert step_ids(process, "fact_finding") == [
        "applicant_lookup",
        "species_lookup",
        "export_permit_check",
        "scientific_opinion",
        "fact_assessment",
    ]
    assert process.fields["applicant_cvr"].required is True
    assert process.fields["species"].origin == "process"
