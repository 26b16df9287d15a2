"""References between definitions and the rules of extension (SF3xx)."""

from __future__ import annotations

from pathlib import Path

from engine.actions import ACTIONS
from engine.definitions.fields import FIELD_TYPES
from engine.definitions.loader import load_definitions
from tests.definitions.conftest import LoadProcess
from tests.definitions.helpers import DEMO_FILE, HEADER, SKELETON_FILE, demo, edit_skeleton, formatted, single, write

STEP_IDS = (
    "intake_check, receipt_letter, completeness_check, information_request_letter, information_received, "
    "applicant_lookup, fact_assessment, consultation, draft_decision, party_hearing, decision_approval, "
    "decision_letter, closing_check"
)
PHASE_IDS = (
    "approval, awaiting_information, closed, closing, decision, draft, fact_finding, hoering, partshoering, receipt, "
    "screening"
)
FIELD_NAMES = (
    "applicant_address, applicant_city, applicant_cvr, applicant_email, applicant_name, applicant_phone, "
    "applicant_postcode, applicant_register_name, applicant_register_status, application_complete, "
    "assessment_note, closing_note, conditions, consultation_required, "
    "decision_outcome, decision_text, fee_due, information_received_note, missing_information, "
    "statement_of_reasons"
)
RECEIPT_LETTER = """\
letters:
  receipt:
    template: {da: demo/receipt.da.md.j2}
"""
DECISION_LETTER = """\
letters:
  decision:
    template: {da: demo/decision.da.md.j2}
"""
RECEIPT_TEMPLATE = "processes/afgoerelse/demo/receipt.da.md.j2"
DECISION_TEMPLATE = "processes/afgoerelse/demo/decision.da.md.j2"
EXTENDS_DECISION = '{% extends "skeletons/letters/decision.da.md.j2" %}\n'


def inserted_step(step: str, after: str = "fact_assessment") -> str:
    """Return a `steps:` section that inserts `step` (YAML lines indented by 6) after `after`.

    Appended by `demo()`, the section starts on line 8 and the step's first key is on line 11.
    """
    return f"steps:\n  - insert_after: {after}\n    step:\n{step}"


# Skeletons and ids -------------------------------------------------------------------------


def test_unknown_skeleton_lists_known_ones(load_process: LoadProcess) -> None:
    text = HEADER.replace("extends: afgoerelse", "extends: tilsyn")
    problem = single(load_process(text, folder="tilsyn"))

    assert problem.format("en") == (
        "processes/tilsyn/demo.yaml:2:10: SF300 'tilsyn' is neither a skeleton nor a process. Known skeletons: "
        "afgoerelse. A process may also extend another process by its id."
    )


def test_duplicate_process_id_names_first_file(load_process: LoadProcess) -> None:
    load_process(HEADER, name="a.yaml")
    loaded = load_process(HEADER, name="b.yaml")
    problem = single(loaded)

    assert problem.format("en") == (
        "processes/afgoerelse/b.yaml:1:10: SF301 Process 'demo' is defined twice; "
        "first in processes/afgoerelse/a.yaml:1:10. Give one of them another id."
    )
    assert problem.text.da == "Proces 'demo' er defineret to gange; første gang i processes/afgoerelse/a.yaml:1:10."
    assert sorted(loaded.compiled) == ["demo"]


def test_duplicate_skeleton_id(root: Path) -> None:
    write(root, "skeletons/copy.yaml", (root / SKELETON_FILE).read_text(encoding="utf-8"))
    problem = single(load_definitions(root))

    assert problem.format("en") == (
        f"skeletons/copy.yaml:9:11: SF301 Skeleton 'afgoerelse' is defined twice; first in {SKELETON_FILE}:9:11. "
        "Give one of them another id."
    )


def test_broken_skeleton_is_not_unknown(root: Path, load_process: LoadProcess) -> None:
    # A model error in the skeleton (an unknown key) is reported there, and nowhere else.
    edit_skeleton(root, "intake_roles: [applicant, caseworker]", "intake_roles: [applicant, caseworker]\nintake: x")
    loaded = load_process(HEADER)

    assert [(problem.code, problem.location.file) for problem in loaded.problems] == [("SF200", SKELETON_FILE)]
    assert loaded.broken_skeletons == {"afgoerelse"}
    assert loaded.compiled == {}


def test_unreadable_skeleton_is_known_by_file_name(root: Path, load_process: LoadProcess) -> None:
    (root / SKELETON_FILE).write_bytes(b"skeleton: afgoerelse\x00\n")
    loaded = load_process(HEADER)

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [
        ("SF100", f"{SKELETON_FILE}:1:21")
    ]
    assert loaded.broken_skeletons == {"afgoerelse"}


def test_skeleton_file_with_other_id_still_unknown(root: Path, load_process: LoadProcess) -> None:
    # Only the id the broken file declares is excused; other names in `extends` are still unknown.
    write(root, "skeletons/tilsyn.yaml", "skeleton: tilsyn\ntitle: [\n")
    loaded = load_process(HEADER.replace("extends: afgoerelse", "extends: tilsy"), folder="tilsy")

    assert [problem.code for problem in loaded.problems] == ["SF300", "SF100"]


def test_role_defined_again(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("roles:\n  caseworker: {label: {da: Sagsbehandler, en: Caseworker}}\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:3: SF301 Role 'caseworker' is defined twice; first in {SKELETON_FILE}:19:5. "
        "Give one of them another id."
    )


def test_inserted_step_with_existing_id(load_process: LoadProcess) -> None:
    step = "      id: closing_check\n      kind: task\n      role: caseworker\n      label: {da: A, en: B}\n"
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.code == "SF301"
    assert str(problem.location) == f"{DEMO_FILE}:11:11"
    assert problem.text.en == f"Step 'closing_check' is defined twice; first in {SKELETON_FILE}:340:9."


# Step changes --------------------------------------------------------------------------------


def test_unknown_anchor_step(load_process: LoadProcess) -> None:
    step = "      id: extra\n      kind: task\n      role: caseworker\n      label: {da: A, en: B}\n"
    problem = single(load_process(demo(inserted_step(step, after="nowhere"))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:19: SF302 The step 'nowhere' does not exist. Known steps: {STEP_IDS}."
    )


def test_locked_step_removed(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("steps:\n  - remove: decision_approval\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:13: SF303 The step 'decision_approval' is locked by the skeleton 'afgoerelse' and cannot "
        "be removed. Locked steps are legal safeguards; insert an extra step before or after instead."
    )
    assert problem.text.da == ("Trinnet 'decision_approval' er låst af skelettet 'afgoerelse' og kan ikke fjernes.")


def test_removed_step_still_approved(load_process: LoadProcess) -> None:
    loaded = load_process(demo("steps:\n  - remove: draft_decision\n"))
    problem = single(loaded)

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:13: SF331 The step 'draft_decision' is removed but is still used by the approval step "
        "'decision_approval' (approves). Replace the step with 'replace:' instead of removing it, or first change "
        "what uses it."
    )
    assert problem.text.da == (
        "Trinnet 'draft_decision' fjernes, men bruges stadig af godkendelsestrinnet 'decision_approval' (approves)."
    )
    assert loaded.compiled == {}


def test_removed_step_still_read_by_guards(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - insert_after: fact_assessment
            step: {id: site_visit, kind: task, role: caseworker, label: {da: A, en: B}}
          - insert_after: site_visit
            step:
              id: visit_report
              kind: task
              role: caseworker
              when: "outcome.site_visit == 'done'"
              label: {da: A, en: B}
              form:
                - field: assessment_note
                  required_if: "outcome['site_visit'] != 'skipped'"
          - remove: site_visit
        """
    )
    problem = single(load_process(text))

    assert str(problem.location) == f"{DEMO_FILE}:21:13"
    assert problem.text.en == (
        "The step 'site_visit' is removed but is still used by the condition of the step 'visit_report' "
        "(outcome.site_visit), required_if of the field 'assessment_note' in the step 'visit_report' "
        "(outcome.site_visit)."
    )


def test_removed_step_put_back_is_not_reported(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - remove: draft_decision
          - insert_before: decision_approval
            step: {id: draft_decision, kind: task, role: caseworker, label: {da: Udkast, en: Draft}}
        """
    )

    assert formatted(load_process(text)) == []


def test_variant_removing_step_of_parent(root: Path) -> None:
    parent = demo(
        """\
        steps:
          - insert_after: fact_assessment
            step: {id: site_visit, kind: task, role: caseworker, label: {da: A, en: B}}
        """
    )
    child = (
        "process: demo-variant\nextends: demo\ntitle: {da: V, en: V}\n"
        "steps:\n  - insert_after: site_visit\n    step:\n      id: site_approval\n      kind: approval\n"
        "      role: approver\n      eyes: 4\n      approves: site_visit\n      label: {da: A, en: B}\n"
        "  - remove: site_visit\n"
    )
    write(root, DEMO_FILE, parent)
    write(root, "processes/afgoerelse/demo-variant.yaml", child)
    loaded = load_definitions(root)

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [
        ("SF331", "processes/afgoerelse/demo-variant.yaml:13:13")
    ]
    assert sorted(loaded.compiled) == ["demo"]


def test_locked_step_replaced_by_task(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - replace: decision_letter
            step:
              id: decision_letter
              kind: task
              role: caseworker
              label: {da: Send selv, en: Send it yourself}
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:11:7: SF329 The step 'decision_letter' is locked by the skeleton 'afgoerelse', and the "
        "replacement weakens it: the kind 'letter' becomes 'task'; the letter 'decision' is dropped. "
        "A locked step may only be replaced by a step with the same id, kind, role and target that is still "
        "required, has no new condition, has at least as many eyes and no shorter deadline."
    )


def test_locked_approval_lowered_is_weakened(root: Path) -> None:
    edit_skeleton(root, "        eyes: 4\n", "        eyes: 6\n")
    text = demo(
        """\
        steps:
          - replace: decision_approval
            step:
              id: decision_approval
              kind: approval
              role: approver
              eyes: 4
              approves: draft_decision
              label: {da: Godkend, en: Approve}
        """
    )
    write(root, DEMO_FILE, text)
    problem = single(load_definitions(root))

    assert problem.code == "SF329"
    assert "the approval is lowered from 6 to 4 eyes" in problem.text.en


def test_locked_approval_raised_to_six_eyes(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - replace: decision_approval
            step:
              id: decision_approval
              kind: approval
              role: approver
              eyes: 6
              approves: draft_decision
              label: {da: Godkend af to, en: Approve by two}
        """
    )
    loaded = load_process(text)

    assert formatted(loaded) == []
    approval = next(
        step
        for phase in loaded.compiled["demo"].definition.phases
        for step in phase.steps
        if step.id == "decision_approval"
    )
    assert approval.eyes == 6
    assert approval.locked is True


def test_locked_step_made_conditional_is_weakened(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - replace: decision_approval
            step:
              id: decision_approval
              kind: approval
              role: approver
              eyes: 4
              approves: draft_decision
              when: decision_outcome == 'refused'
              label: {da: Godkend, en: Approve}
        """
    )
    problem = single(load_process(text))

    assert problem.code == "SF329"
    assert "the step gets a condition and can be skipped" in problem.text.en


def test_step_change_with_two_operations(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - insert_after: fact_assessment
            remove: closing_check
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:5: SF318 A step change must have exactly one of insert_after, insert_before, replace and "
        "remove. For example: '- insert_after: screening' followed by 'step: {...}'."
    )


def test_step_change_without_operation(load_process: LoadProcess) -> None:
    step = "      id: extra\n      kind: task\n      role: caseworker\n      label: {da: A, en: B}\n"
    problem = single(load_process(demo("steps:\n  - step:\n" + step)))

    assert problem.code == "SF318"
    assert str(problem.location) == f"{DEMO_FILE}:9:5"


def test_insert_without_step(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("steps:\n  - insert_after: fact_assessment\n")))

    assert problem.format("en") == f"{DEMO_FILE}:9:5: SF201 The key 'step' is missing. Add 'step:' here."


def test_remove_with_step(load_process: LoadProcess) -> None:
    step = "      id: extra\n      kind: task\n      role: caseworker\n      label: {da: A, en: B}\n"
    problem = single(load_process(demo("steps:\n  - remove: closing_check\n    step:\n" + step)))

    assert problem.format("en") == f"{DEMO_FILE}:10:5: SF200 Unknown key 'step'. Allowed keys here: remove."


# Fields ---------------------------------------------------------------------------------------


def test_unknown_field_type(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          permit_number:
            type: txt
            label: {da: Nummer, en: Number}
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:10:11: SF304 The field type 'txt' does not exist. Known types: {', '.join(sorted(FIELD_TYPES))} "
        "(did you mean 'text'?)."
    )


def test_option_that_does_not_apply_to_type(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          count:
            type: integer
            label: {da: Antal, en: Count}
            options:
              - {value: one, label: {da: En, en: One}}
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:12:5: SF316 The field 'count' of type 'integer': 'options' does not apply to this type."
    )


def test_enum_without_options(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("fields:\n  colour: {type: enum, label: {da: Farve, en: Colour}}\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:18: SF316 The field 'colour' of type 'enum': an enum needs a non-empty 'options' list."
    )


def test_override_loosening_required_field(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("field_overrides:\n  applicant_name:\n    required: false\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:10:15: SF321 The field 'applicant_name' cannot be changed like this: "
        "a required skeleton field cannot be made optional."
    )


def test_field_override_of_unknown_field(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("field_overrides:\n  applicant_age:\n    required: true\n")))

    assert problem.code == "SF306"
    assert str(problem.location) == f"{DEMO_FILE}:9:3"
    assert problem.text.en == "The field 'applicant_age' does not exist."
    assert problem.hint is not None
    assert problem.hint.en == f"Known fields: {FIELD_NAMES} (did you mean 'applicant_name'?)."


def test_field_override_requiring_caseworker_field(load_process: LoadProcess) -> None:
    # The mistake is in the process, so the problem points there and not at the skeleton's field.
    problem = single(load_process(demo("field_overrides:\n  assessment_note:\n    required: true\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:10:15: SF316 The field 'assessment_note' of type 'text': 'required' applies only to fields "
        "with source: application; require caseworker fields in the task's form."
    )


# Phases and guards ----------------------------------------------------------------------------


def test_transition_to_unknown_phase(root: Path) -> None:
    edit_skeleton(root, "      - to: hoering\n", "      - to: hearing\n")
    write(root, DEMO_FILE, HEADER)
    loaded = load_definitions(root)

    assert formatted(loaded) == [
        f"{SKELETON_FILE}:254:13: SF305 The phase 'hearing' does not exist. Known phases: {PHASE_IDS} "
        "(did you mean 'hoering'?).",
        # The renamed transition was the only way into the consultation phase.
        f"{SKELETON_FILE}:258:9: SF323 The phase 'hoering' cannot be reached from the first phase 'receipt'. "
        "Add a transition to the phase from another phase, or remove it.",
    ]
    assert loaded.compiled == {}, "a process must not compile on a broken skeleton"


def test_final_phase_with_transitions(root: Path) -> None:
    edit_skeleton(root, "    final: true\n", "    final: true\n    next:\n      - to: receipt\n")
    problem = single(load_definitions(root))

    assert problem.format("en") == (
        f"{SKELETON_FILE}:352:5: SF320 The phase 'closed': a final phase cannot have transitions ('next')."
    )


def test_phase_without_transitions(root: Path) -> None:
    edit_skeleton(root, "    next:\n      - to: closed\n", "")
    problems = formatted(load_definitions(root))

    assert problems == [
        f"{SKELETON_FILE}:337:9: SF320 The phase 'closing': a phase that is not final needs at least one "
        "transition in 'next'.",
        # The final phase was only reachable through the removed transition.
        f"{SKELETON_FILE}:347:9: SF323 The phase 'closed' cannot be reached from the first phase 'receipt'. "
        "Add a transition to the phase from another phase, or remove it.",
    ]


def test_guard_with_unknown_field(load_process: LoadProcess) -> None:
    step = (
        "      id: extra\n      kind: task\n      role: caseworker\n"
        "      when: permit_count > 3\n      label: {da: A, en: B}\n"
    )
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:14:13: SF306 The field 'permit_count' does not exist. "
        f"Known fields: {FIELD_NAMES.replace('missing_information, ', 'missing_information, outcome, ')}, today."
    )


def test_guard_that_does_not_parse(load_process: LoadProcess) -> None:
    step = (
        "      id: extra\n      kind: task\n      role: caseworker\n"
        "      when: application_complete and\n      label: {da: A, en: B}\n"
    )
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:14:13: SF307 The expression 'application_complete and' is not valid: unexpected 'end of "
        "template'. Write a Jinja2 expression over the fields, e.g. quantity > 10 and purpose == 'T'."
    )


def test_guard_with_trailing_tokens(load_process: LoadProcess) -> None:
    step = (
        "      id: extra\n      kind: task\n      role: caseworker\n"
        "      when: application_complete consultation_required\n      label: {da: A, en: B}\n"
    )
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.code == "SF307"
    assert problem.text.en == (
        "The expression 'application_complete consultation_required' is not valid: "
        "unexpected 'consultation_required' after the end of the expression."
    )


def test_guard_cannot_name_jinja_globals(load_process: LoadProcess) -> None:
    # Only fields, `outcome` and `today` are names; `lipsum` and `range` are not reachable.
    step = (
        "      id: extra\n      kind: task\n      role: caseworker\n"
        "      when: lipsum.__globals__ or range(3)\n      label: {da: A, en: B}\n"
    )
    loaded = load_process(demo(inserted_step(step)))

    assert [(problem.code, problem.text.en) for problem in loaded.problems] == [
        ("SF306", "The field 'lipsum' does not exist."),
        ("SF306", "The field 'range' does not exist."),
        (
            "SF307",
            "The expression 'lipsum.__globals__ or range(3)' is not valid: '__globals__' starts with an underscore, "
            "and internal Python attributes are not available.",
        ),
    ]


# Actions, letters and templates -------------------------------------------------------------


def test_unknown_action(load_process: LoadProcess) -> None:
    step = "      id: extra\n      kind: action\n      action: send_fax\n      label: {da: A, en: B}\n"
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:13:15: SF308 The action 'send_fax' does not exist. Known actions: {', '.join(sorted(ACTIONS))}."
    )


def test_action_params_missing_one(load_process: LoadProcess) -> None:
    step = (
        "      id: extra\n      kind: action\n      action: cvr_lookup\n"
        "      params: {field: applicant_cvr, name_field: applicant_register_name}\n      label: {da: A, en: B}\n"
    )
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:14:15: SF309 Invalid parameters for the action 'cvr_lookup': the parameter 'status_field' is "
        "missing."
    )


def test_action_param_naming_field_of_wrong_type(load_process: LoadProcess) -> None:
    step = (
        "      id: extra\n      kind: action\n      action: cvr_lookup\n      params:\n"
        "        field: applicant_name\n        name_field: applicant_register_name\n"
        "        status_field: applicant_register_status\n      label: {da: A, en: B}\n"
    )
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:15:16: SF309 Invalid parameters for the action 'cvr_lookup': 'field' must name a field of "
        "type cvr, but 'applicant_name' has type 'text'."
    )


def test_action_writing_applicant_field(load_process: LoadProcess) -> None:
    step = (
        "      id: extra\n      kind: action\n      action: cvr_lookup\n      params:\n"
        "        field: applicant_cvr\n        name_field: applicant_city\n"
        "        status_field: applicant_register_status\n      label: {da: A, en: B}\n"
    )
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:16:21: SF309 Invalid parameters for the action 'cvr_lookup': the action writes "
        "'applicant_city', so that field needs source: system."
    )


def test_unknown_letter(load_process: LoadProcess) -> None:
    step = "      id: extra\n      kind: letter\n      letter: postcard\n      label: {da: A, en: B}\n"
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:13:15: SF310 The letter 'postcard' does not exist. Known letters: consultation, "
        "decision, information_request, party_hearing, receipt. "
        "A new letter is declared under 'letters' with both 'label' and 'template'."
    )


def test_template_that_does_not_exist(load_process: LoadProcess) -> None:
    # A file that does not exist is reported where the YAML names it.
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert problem.format("en") == (
        f"{DEMO_FILE}:10:20: SF311 The letter template '{RECEIPT_TEMPLATE}' (letter 'receipt') cannot be used: the "
        "file does not exist. Create the file, or correct the path. Paths in YAML are relative to the YAML file, and "
        "paths in {% extends %} and {% include %} are relative to the definitions folder."
    )


def test_template_with_syntax_error(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "Kære {{ applicant_name }}\n\nVi har modtaget {{ case.received }\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert problem.format("en") == (
        f"{RECEIPT_TEMPLATE}:3:1: SF311 The letter template '{RECEIPT_TEMPLATE}' (letter 'receipt') cannot be used: "
        "syntax error: unexpected '}'. Correct the syntax on this line; check that every {{ }}, {% %} and "
        "{% block %} is closed."
    )
    assert problem.format("da") == (
        f"{RECEIPT_TEMPLATE}:3:1: SF311 Brevskabelonen '{RECEIPT_TEMPLATE}' (brevet 'receipt') kan ikke bruges: "
        "syntaksfejl; Jinja2 melder: unexpected '}'. Ret syntaksen på linjen; tjek at hver {{ }}, {% %} og "
        "{% block %} er lukket."
    )


def test_template_outside_definitions_folder(load_process: LoadProcess) -> None:
    letter = "letters:\n  receipt:\n    template: {da: ../../../../../etc/hostname}\n"
    problem = single(load_process(demo(letter)))

    assert problem.code == "SF311"
    assert problem.text.en.endswith("cannot be used: the template lies outside the definitions folder.")


def test_template_not_utf8(root: Path, load_process: LoadProcess) -> None:
    (root / RECEIPT_TEMPLATE).parent.mkdir(parents=True)
    (root / RECEIPT_TEMPLATE).write_bytes(b"K\xe6re ans\xf8ger\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert str(problem.location) == f"{RECEIPT_TEMPLATE}:1:2"
    assert problem.text.en == (
        f"The letter template '{RECEIPT_TEMPLATE}' (letter 'receipt') cannot be used: the file is not valid UTF-8 "
        "(byte 1)."
    )


def test_template_with_unknown_variable(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "Kære {{ applicant_nmae }}\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert problem.code == "SF312"
    assert str(problem.location) == f"{RECEIPT_TEMPLATE}:1:1"
    assert problem.text.en == (
        f"The letter template '{RECEIPT_TEMPLATE}' (letter 'receipt') uses the unknown variable 'applicant_nmae'."
    )
    assert problem.hint is not None
    assert "applicant_name, " in problem.hint.en
    assert "letter_date, " in problem.hint.en


def test_included_template_with_unknown_variable(root: Path, load_process: LoadProcess) -> None:
    # The partial fails at render time (StrictUndefined), so validation must look into includes too.
    write(root, RECEIPT_TEMPLATE, '{% include "processes/afgoerelse/demo/_part.md.j2" %}\n')
    write(root, "processes/afgoerelse/demo/_part.md.j2", "{{ permit_colour }}\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert problem.code == "SF312"
    assert str(problem.location) == "processes/afgoerelse/demo/_part.md.j2:1:1"
    assert problem.text.en == (
        "The letter template 'processes/afgoerelse/demo/_part.md.j2' (letter 'receipt') uses the unknown variable "
        "'permit_colour'."
    )


def test_locked_letter_not_extending_skeleton(root: Path, load_process: LoadProcess) -> None:
    write(root, DECISION_TEMPLATE, "# Afgørelse\n\n{{ decision_text }}\n")
    problem = single(load_process(demo(DECISION_LETTER)))

    assert problem.format("en") == (
        f"{DECISION_TEMPLATE}:1:1: SF313 The letter 'decision' is locked by the skeleton: the template must extend the "
        "skeleton's template. Start the template with "
        '{% extends "skeletons/letters/decision.da.md.j2" %} and fill only the blocks that are not locked.'
    )


def test_locked_letter_block_overridden(root: Path, load_process: LoadProcess) -> None:
    write(root, DECISION_TEMPLATE, EXTENDS_DECISION + "\n{% block complaint_notice %}Ingen klage.{% endblock %}\n")
    problem = single(load_process(demo(DECISION_LETTER)))

    assert problem.code == "SF313"
    assert str(problem.location) == f"{DECISION_TEMPLATE}:3:1"
    assert problem.text.en == (
        "The letter 'decision' is locked by the skeleton: the template overrides the locked block 'complaint_notice'."
    )


def test_locked_letter_open_block_overridden(root: Path, load_process: LoadProcess) -> None:
    write(root, DECISION_TEMPLATE, EXTENDS_DECISION + "{% block fee %}Gebyr: {{ fee | kr }}{% endblock %}\n")
    loaded = load_process(demo(DECISION_LETTER))

    assert formatted(loaded) == []
    letter = loaded.compiled["demo"].definition.letters["decision"]
    assert letter.templates == {"da": DECISION_TEMPLATE}
    assert letter.base_templates == {
        "da": "skeletons/letters/decision.da.md.j2",
        "en": "skeletons/letters/decision.en.md.j2",
    }


def test_new_letter_without_label(load_process: LoadProcess) -> None:
    # Without both label and template the name is taken as an inherited letter, which does not exist.
    problem = single(load_process(demo("letters:\n  postcard:\n    template: {da: demo/postcard.da.md.j2}\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:3: SF310 The letter 'postcard' does not exist. Known letters: consultation, "
        "decision, information_request, party_hearing, receipt. "
        "A new letter is declared under 'letters' with both 'label' and 'template'."
    )


# Roles, steps, deadlines, approvals -------------------------------------------------------------


def test_unknown_role(load_process: LoadProcess) -> None:
    step = "      id: extra\n      kind: task\n      role: inspector\n      label: {da: A, en: B}\n"
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:13:13: SF314 The role 'inspector' does not exist. Known roles: applicant, approver, caseworker."
    )


def test_task_without_role(load_process: LoadProcess) -> None:
    step = "      id: extra\n      kind: task\n      label: {da: A, en: B}\n"
    problem = single(load_process(demo(inserted_step(step))))

    assert (
        problem.format("en") == f"{DEMO_FILE}:12:13: SF315 The step 'extra' (task): a step of kind 'task' needs 'role'."
    )


def test_key_not_applying_to_step_kind(load_process: LoadProcess) -> None:
    step = (
        "      id: extra\n      kind: letter\n      letter: receipt\n"
        "      role: caseworker\n      label: {da: A, en: B}\n"
    )
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:14:7: SF315 The step 'extra' (letter): 'role' does not apply to a step of kind 'letter'."
    )


def test_form_with_system_field(load_process: LoadProcess) -> None:
    step = (
        "      id: extra\n      kind: task\n      role: caseworker\n      label: {da: A, en: B}\n"
        "      form:\n        - field: applicant_register_name\n"
    )
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:16:18: SF315 The step 'extra' (task): the field 'applicant_register_name' is filled by an "
        "action (source: system), not in a form."
    )


def test_deadline_with_unknown_unit(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("processing_deadline: {value: 6, unit: fortnights}\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:8:22: SF317 Invalid deadline: the unit 'fortnights' is unknown; use one of calendar_days, "
        "months, weeks, working_days."
    )


def test_step_deadline_problem_location(load_process: LoadProcess) -> None:
    problem = single(
        load_process(demo("step_deadlines:\n  information_received: {value: 3, unit: weeks, rule: lax}\n"))
    )

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:25: SF317 Invalid deadline: the rule 'lax' is unknown; use one of extended, standard."
    )


def test_step_deadline_for_unknown_step(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("step_deadlines:\n  appeal_window: {value: 3, unit: weeks}\n")))

    assert (
        problem.format("en")
        == f"{DEMO_FILE}:9:3: SF302 The step 'appeal_window' does not exist. Known steps: {STEP_IDS}."
    )


def test_approval_of_action_step(load_process: LoadProcess) -> None:
    step = (
        "      id: lookup_approval\n      kind: approval\n      role: approver\n      eyes: 4\n"
        "      approves: applicant_lookup\n      label: {da: A, en: B}\n"
    )
    problem = single(load_process(demo(inserted_step(step))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:15:17: SF319 The approval step 'lookup_approval' approves 'applicant_lookup': only a task can "
        "be approved, and 'applicant_lookup' is of kind 'action'."
    )


def test_approval_before_approved_step(load_process: LoadProcess) -> None:
    step = (
        "      id: early_approval\n      kind: approval\n      role: approver\n      eyes: 4\n"
        "      approves: fact_assessment\n      label: {da: A, en: B}\n"
    )
    problem = single(load_process(demo(inserted_step(step, after="receipt_letter"))))

    assert problem.format("en") == (
        f"{DEMO_FILE}:15:17: SF319 The approval step 'early_approval' approves 'fact_assessment': the approved step "
        "must come before the approval step."
    )


def test_approval_without_eyes(load_process: LoadProcess) -> None:
    step = (
        "      id: second_approval\n      kind: approval\n      role: approver\n"
        "      approves: draft_decision\n      label: {da: A, en: B}\n"
    )
    problem = single(load_process(demo(inserted_step(step, after="decision_approval"))))

    assert problem.text.en == "The step 'second_approval' (approval): a step of kind 'approval' needs 'eyes'."


def test_case_title_with_syntax_error(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("case_title: '{{ applicant_name'\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:8:13: SF202 Invalid value for 'case_title': unexpected end of template, expected "
        "'end of print statement' (line 1)."
    )


# Warnings and several problems ---------------------------------------------------------------


def test_process_in_wrong_folder_is_warning(load_process: LoadProcess) -> None:
    loaded = load_process(HEADER, folder="tilladelser")
    problem = single(loaded)

    assert problem.severity == "warning"
    assert problem.format("en") == (
        "processes/tilladelser/demo.yaml:1:10: SF322 warning: The process 'demo' extends 'afgoerelse' but lives in "
        "the folder 'tilladelser'. Move the file to processes/afgoerelse/."
    )
    assert problem.format("da").startswith("processes/tilladelser/demo.yaml:1:10: SF322 advarsel: Processen 'demo'")
    assert loaded.errors == []
    assert sorted(loaded.compiled) == ["demo"]


def test_three_mistakes_reported_by_line(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - insert_after: fact_assessment
            step: {id: extra, kind: task, role: inspector, label: {da: A, en: B}}
          - insert_after: extra
            step: {id: notice, kind: letter, letter: postcard, label: {da: A, en: B}}
        fields:
          permit_number:
            type: txt
            label: {da: Nummer, en: Number}
        """
    )
    loaded = load_process(text)

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [
        ("SF314", f"{DEMO_FILE}:10:41"),
        ("SF310", f"{DEMO_FILE}:12:46"),
        ("SF304", f"{DEMO_FILE}:15:11"),
    ]
    assert loaded.compiled == {}


# Letters a process names ---------------------------------------------------------------------


def test_misspelt_inherited_letter(load_process: LoadProcess) -> None:
    loaded = load_process(demo("letters:\n  decison:\n    template: {da: demo/decision.da.md.j2}\n"))
    problem = single(loaded)

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:3: SF310 The letter 'decison' does not exist. Known letters: consultation, decision, "
        "information_request, party_hearing, receipt (did you mean 'decision'?). A new letter is declared under "
        "'letters' with both 'label' and 'template'."
    )
    assert loaded.compiled == {}


def test_new_letter_never_sent(root: Path, load_process: LoadProcess) -> None:
    write(root, "processes/afgoerelse/demo/reminder.da.md.j2", "Påmindelse til {{ applicant_name }}\n")
    letter = (
        "letters:\n  reminder:\n    label: {da: Påmindelse, en: Reminder}\n    template: {da: demo/reminder.da.md.j2}\n"
    )
    loaded = load_process(demo(letter))
    problem = single(loaded)

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:3: SF333 warning: The letter 'reminder' is declared, but no step sends it. Add a step with "
        "'kind: letter' and 'letter: reminder', or remove the letter."
    )
    assert problem.text.da == "Brevet 'reminder' er erklæret, men intet trin sender det."
    assert sorted(loaded.compiled) == ["demo"]


# Steps at an unknown anchor ---------------------------------------------------------------------


def test_step_at_unknown_anchor_is_still_checked(load_process: LoadProcess) -> None:
    step = (
        "      id: extra\n      kind: task\n      role: casewroker\n      label: {da: A, en: B}\n"
        "      when: aplication_complete\n      deadline: {value: 2, unit: weeks, rule: lax}\n"
        "      form:\n        - field: assesment_note\n"
    )
    loaded = load_process(demo(inserted_step(step, after="fact_asessment")))

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [
        ("SF302", f"{DEMO_FILE}:9:19"),
        ("SF314", f"{DEMO_FILE}:13:13"),
        ("SF306", f"{DEMO_FILE}:15:13"),
        ("SF317", f"{DEMO_FILE}:16:17"),
        ("SF306", f"{DEMO_FILE}:18:18"),
    ]
    assert loaded.problems[0].hint is not None
    assert loaded.problems[0].hint.en.endswith("(did you mean 'fact_assessment'?).")


def test_steps_depending_on_unplaced_step(load_process: LoadProcess) -> None:
    # Only the unknown anchor is reported: the second insert, the approval, the deadline and the
    # guard all name the step that could not be placed.
    text = demo(
        """\
        steps:
          - insert_before: drafting
            step: {id: extra, kind: task, role: caseworker, label: {da: A, en: B}}
          - insert_after: extra
            step:
              id: extra_approval
              kind: approval
              role: approver
              eyes: 4
              approves: extra
              when: "outcome.extra == 'done'"
              label: {da: A, en: B}
        step_deadlines:
          extra: {value: 3, unit: weeks}
        """
    )
    loaded = load_process(text)

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [
        ("SF302", f"{DEMO_FILE}:9:20"),
    ]


def test_unplaced_step_with_taken_id(load_process: LoadProcess) -> None:
    step = "      id: closing_check\n      kind: task\n      role: caseworker\n      label: {da: A, en: B}\n"
    loaded = load_process(demo(inserted_step(step, after="nowhere")))

    assert [problem.code for problem in loaded.problems] == ["SF302", "SF301"]
    assert loaded.problems[1].text.en == f"Step 'closing_check' is defined twice; first in {SKELETON_FILE}:340:9."


def test_unplaced_replacement_is_checked(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - replace: decison_approval
            step: {id: decison_approval, kind: approval, role: approver, approves: drafting, label: {da: A, en: B}}
        """
    )
    loaded = load_process(text)

    assert [problem.code for problem in loaded.problems] == ["SF302", "SF315", "SF302"]
    assert loaded.problems[0].hint is not None
    assert loaded.problems[0].hint.en.endswith("(did you mean 'decision_approval'?).")
    assert loaded.problems[1].text.en.endswith("a step of kind 'approval' needs 'eyes'.")
    assert loaded.problems[2].text.en == "The step 'drafting' does not exist."


# Did-you-mean suggestions ----------------------------------------------------------------------


def test_field_type_suggestion_ignores_case(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("fields:\n  count:\n    type: Integer\n    label: {da: A, en: B}\n")))

    assert problem.code == "SF304"
    assert problem.hint is not None
    assert problem.hint.en.endswith("(did you mean 'integer'?).")


def test_unknown_guard_name_suggestion(load_process: LoadProcess) -> None:
    step = "      id: extra\n      kind: task\n      role: caseworker\n      when: Application_complete\n"
    problem = single(load_process(demo(inserted_step(step + "      label: {da: A, en: B}\n"))))

    assert problem.code == "SF306"
    assert problem.hint is not None
    assert problem.hint.en.endswith("(did you mean 'application_complete'?).")


def test_step_deadline_suggestion(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("step_deadlines:\n  information_recieved: {value: 3, unit: weeks}\n")))

    assert problem.hint is not None
    assert problem.hint.en == f"Known steps: {STEP_IDS} (did you mean 'information_received'?)."


def test_no_suggestion_when_nothing_is_close(load_process: LoadProcess) -> None:
    step = "      id: extra\n      kind: task\n      role: caseworker\n      label: {da: A, en: B}\n"
    problem = single(load_process(demo(inserted_step(step, after="xyz"))))

    assert problem.hint is not None
    assert "did you mean" not in problem.hint.en


# Locked steps ----------------------------------------------------------------------------------


def test_locked_approval_replaced_without_eyes(load_process: LoadProcess) -> None:
    text = demo(
        """\
        steps:
          - replace: decision_approval
            step:
              id: decision_approval
              kind: task
              role: approver
              label: {da: Godkend, en: Approve}
        """
    )
    problem = single(load_process(text))

    assert problem.code == "SF329"
    assert "the replacement has no 'eyes', and the step has 4 eyes" in problem.text.en
    assert "None" not in problem.text.en
    assert "erstatningen har ingen 'eyes', og trinnet har 4 øjne" in problem.text.da


def test_party_address_fields_are_checked(root: Path, load_process: LoadProcess) -> None:
    edit_skeleton(
        root,
        "intake_roles: [applicant, caseworker]",
        "intake_roles: [applicant, caseworker]\nparty:\n  postcode: applicant_city\n  city: applicant_town",
    )

    loaded = load_process(HEADER)

    assert sorted(problem.code for problem in loaded.problems) == ["SF306", "SF316"]
    messages = " ".join(problem.format("en") for problem in loaded.problems)
    assert "'party.postcode' must name a field of type postcode" in messages
    assert "applicant_town" in messages
