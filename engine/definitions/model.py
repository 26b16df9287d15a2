"""The YAML vocabulary of skeletons and processes, declared once as pydantic models.

A skeleton file (`skeletons/*.yaml`) declares a base process:

    skeleton: afgoerelse
    title: {da: Afgørelse, en: Decision}
    roles: {caseworker: {label: {da: ..., en: ...}}}
    fields: {applicant_name: {type: text, label: ..., required: true}}
    letters: {receipt: {label: ..., template: {da: letters/receipt.da.md.j2}}}
    phases:
      - id: receipt
        label: ...
        steps:
          - {id: receipt_letter, kind: letter, letter: receipt, label: ...}
        next:
          - {to: screening}

A process file (`processes/<skeleton>/*.yaml`) extends one skeleton, or another process
whose variant it is (then it inherits that process's additions, legal basis and
classification, and may change them further):

    process: cites-import
    extends: afgoerelse
    title: ...
    fields: {species: {type: species, label: ..., required: true}}
    field_overrides: {applicant_cvr: {required: true}}
    steps:
      - insert_after: applicant_lookup
        step: {id: species_lookup, kind: action, action: species_plus_lookup, ...}
      - replace: consultation_request
        step: {...}
      - remove: consultation_reply
    letters: {decision: {template: {da: cites-import/decision.da.md.j2}}}
    processing_deadline: {value: 6, unit: weeks}
    step_deadlines: {missing_information_reply: {value: 14, unit: calendar_days}}

Every model forbids unknown keys. The JSON Schema in `schemas/` is generated from these
models. Semantic rules (known field types, known actions, locked steps, guards) are
checked in `engine.definitions.validate`, not here, so that all problems of a file are
reported together with a stable code.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from engine.i18n import Language, Text

FIELD_ID_PATTERN = r"^[a-z][a-z0-9_]*$"
PROCESS_ID_PATTERN = r"^[a-z][a-z0-9-]*$"

Identifier = Annotated[str, StringConstraints(pattern=FIELD_ID_PATTERN, max_length=64)]
ProcessId = Annotated[str, StringConstraints(pattern=PROCESS_ID_PATTERN, max_length=64)]
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
# Where a part comes from: the skeleton, a process, or the skeleton with a process's change.
Origin = Literal["skeleton", "process", "changed"]
StepKind = Literal["task", "action", "letter", "approval", "hearing", "party_hearing", "timer", "intake", "report"]
# Steps the engine carries out as soon as their phase is entered.
AUTOMATIC_KINDS: frozenset[str] = frozenset({"action", "letter", "intake"})
# Steps a caseworker opens and that then wait for replies or a deadline by themselves.
HEARING_KINDS: frozenset[str] = frozenset({"hearing", "party_hearing"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Label(Strict):
    """A user-facing text in Danish and English."""

    da: NonEmpty
    en: NonEmpty

    def get(self, language: Language) -> str:
        return self.en if language == "en" else self.da

    def text(self) -> Text:
        return Text(da=self.da, en=self.en)


class RoleDef(Strict):
    label: Label
    description: Label | None = None


class Option(Strict):
    value: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    label: Label


class FieldDef(Strict):
    """A case field (fagdata). `type` names an entry of the field type registry."""

    type: str
    label: Label
    help: Label | None = None
    source: Literal["application", "caseworker", "system"] = Field(
        default="application",
        description="Who fills the field: the applicant at intake, a caseworker in a task form, or an action.",
    )
    required: StrictBool = Field(default=False, description="Required at intake (only for source: application).")
    min: Decimal | None = None
    max: Decimal | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1)
    pattern: str | None = None
    multiline: StrictBool = False
    options: list[Option] | None = None
    example: Any = Field(default=None, description="A valid value, used in documentation and generated test cases.")


class FieldOverride(Strict):
    """Changes a process may make to a skeleton field: tighten it or relabel it."""

    required: StrictBool | None = None
    label: Label | None = None
    help: Label | None = None
    example: Any = None


class Deadline(Strict):
    value: int = Field(ge=0, le=3650)
    unit: str = Field(description="calendar_days, weeks, months or working_days")
    rule: str = Field(
        default="standard",
        description="Which days do not count as working days: standard (Saturdays, Sundays and public "
        "holidays) or extended (also 5 June, 24 and 31 December).",
    )


class FormField(Strict):
    field: Identifier
    required: StrictBool = False
    required_if: str | None = Field(default=None, description="Guard expression; the field is required when it holds.")


class StepDef(Strict):
    """One checklist step of a phase."""

    id: Identifier
    kind: StepKind
    label: Label
    description: Label | None = None
    role: Identifier | None = Field(default=None, description="Role that completes a task or approval step.")
    required: StrictBool = True
    locked: StrictBool = Field(default=False, description="A legal safeguard: a process may not remove or replace it.")
    when: str | None = Field(
        default=None, description="Guard expression evaluated on phase entry; the step is skipped when false."
    )
    form: list[FormField] = Field(default_factory=list)
    action: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    letter: Identifier | None = None
    approves: Identifier | None = None
    eyes: Literal[4, 6] | None = None
    deadline: Deadline | None = Field(
        default=None,
        description="When the step is due. For a hearing, the reply deadline; for a timer, when it fires.",
    )
    until: Identifier | None = Field(
        default=None, description="For a timer: a date field; the timer fires at the end of that day."
    )
    checks: list[Check] = Field(
        default_factory=list, description="Rules over the case data that must hold to complete a task step."
    )


class TransitionDef(Strict):
    to: Identifier
    when: str | None = None
    label: Label | None = None


class PhaseDef(Strict):
    id: Identifier
    label: Label
    description: Label | None = None
    steps: list[StepDef] = Field(default_factory=list)
    next: list[TransitionDef] = Field(default_factory=list)
    final: StrictBool = False


class TemplateRef(Strict):
    """Template file per language, relative to the YAML file. Danish is required."""

    da: NonEmpty
    en: NonEmpty | None = None


class LetterDef(Strict):
    label: Label
    template: TemplateRef
    recipient: Literal["applicant"] = "applicant"
    locked: StrictBool = False
    required_blocks: list[Identifier] = Field(
        default_factory=list, description="Blocks the template must define, such as the statement of reasons."
    )
    locked_blocks: list[Identifier] = Field(
        default_factory=list, description="Blocks a process template inherits and may not override."
    )


class LetterOverride(Strict):
    """A process's change to a skeleton letter, or (with both keys) a new letter."""

    label: Label | None = None
    template: TemplateRef | None = None


class AppealDef(Strict):
    body: Label = Field(description="The appeal body, e.g. Miljø- og Fødevareklagenævnet.")
    how: Label = Field(description="How to appeal, e.g. through Klageportalen.")
    deadline: Deadline


class LegalBasis(Strict):
    title: Label
    reference: NonEmpty | Label = Field(
        description="Act and section or executive order, e.g. 'lov nr. 1189 af 2022, § 3', in one form "
        "for both languages or as {da: ..., en: ...}."
    )
    url: str | None = None

    def reference_in(self, language: Language) -> str:
        return self.reference.get(language) if isinstance(self.reference, Label) else self.reference


class Check(Strict):
    """A rule the case data must satisfy when a step is completed (or an application submitted)."""

    rule: str = Field(description="Guard expression that must hold, e.g. \"decision_outcome == 'refused' or x\".")
    message: Label = Field(description="What is wrong and how to fix it, shown when the rule does not hold.")


class Fee(Strict):
    amount: Decimal = Field(ge=0, max_digits=12, decimal_places=2, description="Amount in DKK, e.g. 450.00.")
    label: Label
    note: Label | None = None


class Portfolio(Strict):
    """A process's place in the agency's rollout, and the effect expected from moving it onto Sagsflow."""

    priority: Literal[1, 2, 3] = Field(
        description="Rollout priority: 1 goes first (high volume or high risk), 2 next, 3 last."
    )
    cases_per_year: int = Field(ge=0, le=1_000_000, description="Cases the agency expects a year.")
    minutes_saved_per_case: int = Field(
        ge=0, le=10_000, description="Caseworker minutes a case is expected to save against the old way of working."
    )
    expected_effect: Label = Field(description="The effect the agency expects, in a sentence or two.")


class PartyFields(Strict):
    """Which case fields identify the party that letters go to (the applicant, the inspected party).

    Unset entries default to `applicant_name`, `applicant_cvr`, `applicant_cpr`,
    `applicant_address`, `applicant_postcode` and `applicant_city`. The address goes on
    letters sent by physical mail.
    """

    name: Identifier | None = None
    cvr: Identifier | None = None
    cpr: Identifier | None = None
    address: Identifier | None = None
    postcode: Identifier | None = None
    city: Identifier | None = None


class EscalationRule(Strict):
    """An action the worker takes once when a case or a step is overdue."""

    overdue: Identifier = Field(
        description="`case` for the case's processing deadline, or the id of a step with a deadline."
    )
    action: Literal["notify", "reassign"] = Field(
        description="notify: write a note on the case to `to`; reassign: make `to` the assignee of the case or step."
    )
    to: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="A role of the process, or a user name."
    )
    message: Label = Field(description="The note's text, in Danish and English.")


class SkeletonDef(Strict):
    skeleton: Identifier
    title: Label
    description: Label | None = None
    roles: dict[Identifier, RoleDef] = Field(default_factory=dict)
    intake_roles: list[Identifier] = Field(default_factory=list, description="Roles that may submit an application.")
    fields: dict[Identifier, FieldDef] = Field(default_factory=dict)
    letters: dict[Identifier, LetterDef] = Field(default_factory=dict)
    phases: list[PhaseDef]
    processing_deadline: Deadline | None = None
    appeal: AppealDef | None = None
    case_title: str | None = Field(default=None, description="Jinja2 template for a case's title.")
    party: PartyFields = Field(default_factory=PartyFields, description="The fields naming the party letters go to.")
    escalation: list[EscalationRule] = Field(
        default_factory=list, description="What the worker does when a case or a step is overdue."
    )


class Duplicates(Strict):
    """Refuse a second open case with the same values in `key` (the applicant and key fields)."""

    key: list[Identifier] = Field(min_length=1, description="Fields whose values together identify a duplicate.")
    allow: StrictBool = Field(default=False, description="Accept duplicates anyway (e.g. one permit per shipment).")


class ReplyBy(Strict):
    """A day of the year, such as 1 February: `{month: 2, day: 1}`."""

    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)


class SchemeDef(Strict):
    """A scheme case (ordningssag): its members, and the request cases its bulk run creates.

        scheme:
          members: klap-tilladelse
          requests: klap-aarligt-tilsyn
          fields: {subject_name: holder_name, subject_cvr: holder_cvr}
          period: year
          period_field: report_year
          member_field: permit_reference
          scheme_field: scheme_case
          reply_by: {month: 2, day: 1}

    A member's snapshot holds the member process's fields that `fields` names; the bulk run
    fills each request case from it.
    """

    members: ProcessId = Field(description="The process whose cases are the scheme's members, such as a permit.")
    requests: ProcessId = Field(description="The process of the request cases that the bulk run creates.")
    fields: dict[Identifier, Identifier] = Field(
        min_length=1,
        description="Request field: the member field whose value it gets from the member's snapshot.",
    )
    period: Literal["year"] = Field(
        default="year", description="What one request covers: one request per member and calendar year."
    )
    period_field: Identifier | None = Field(
        default=None, description="An integer field of the request process that gets the period's year."
    )
    member_field: Identifier | None = Field(
        default=None,
        description="A text field of the request process that gets the member's key: the journal number of the "
        "member case, or the reference an imported member was given.",
    )
    scheme_field: Identifier | None = Field(
        default=None, description="A text field of the request process that gets the scheme case's journal number."
    )
    reply_by: ReplyBy = Field(
        description="The day in the year after the period by which the reports are due; a day that is not a "
        "working day moves the deadline to the next working day."
    )


class StepChange(Strict):
    insert_after: Identifier | None = None
    insert_before: Identifier | None = None
    replace: Identifier | None = None
    remove: Identifier | None = None
    step: StepDef | None = None


class ProcessDef(Strict):
    process: ProcessId
    extends: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$", max_length=64)] = Field(
        description="A skeleton, or another process whose variant this is."
    )
    title: Label
    description: Label | None = None
    legal_basis: list[LegalBasis] | None = Field(
        default=None, min_length=1, description="Required unless inherited from the process this one extends."
    )
    classification: Annotated[str, StringConstraints(pattern=r"^\d{2}\.\d{2}\.\d{2}$")] | None = Field(
        default=None,
        description="Code in the agency's journal plan, shaped NN.NN.NN. Required unless inherited.",
    )
    fee: Fee | None = None
    portfolio: Portfolio | None = Field(
        default=None, description="Rollout priority and expected effect; inherited from the process this one extends."
    )
    roles: dict[Identifier, RoleDef] = Field(default_factory=dict)
    fields: dict[Identifier, FieldDef] = Field(default_factory=dict)
    field_overrides: dict[Identifier, FieldOverride] = Field(default_factory=dict)
    steps: list[StepChange] = Field(default_factory=list)
    letters: dict[Identifier, LetterOverride] = Field(default_factory=dict)
    processing_deadline: Deadline | None = None
    step_deadlines: dict[Identifier, Deadline] = Field(default_factory=dict)
    appeal: AppealDef | None = None
    case_title: str | None = None
    application_checks: list[Check] = Field(
        default_factory=list, description="Rules over the application's fields that must hold at submission."
    )
    duplicates: Duplicates | None = Field(
        default=None, description="When a second open application for the same key fields is refused."
    )
    escalation: list[EscalationRule] | None = Field(
        default=None, description="Replaces the escalation rules inherited from the skeleton or parent process."
    )
    team: Identifier | None = Field(
        default=None,
        description="The team whose staff handle the process's cases. Without it, a case gets the submitting "
        "caseworker's first team, or none.",
    )
    scheme: SchemeDef | None = Field(
        default=None, description="Makes the process a scheme case with members and bulk requests (ordningssag)."
    )


# The resolved form: one process with its skeleton folded in. It is what gets validated,
# hashed, stored as an immutable version and compiled; it no longer refers to files.


class ResolvedField(FieldDef):
    origin: Origin


class ResolvedStep(StepDef):
    origin: Origin


class ResolvedPhase(Strict):
    id: Identifier
    label: Label
    description: Label | None = None
    steps: list[ResolvedStep]
    next: list[TransitionDef]
    final: StrictBool


class ResolvedLetter(Strict):
    label: Label
    templates: dict[Language, str] = Field(description="Template name per language.")
    recipient: Literal["applicant"]
    locked: StrictBool
    required_blocks: list[str]
    locked_blocks: list[str]
    base_templates: dict[Language, str] = Field(
        default_factory=dict, description="For a locked letter: the skeleton's template per language."
    )
    origin: Origin


class ResolvedProcess(Strict):
    id: ProcessId
    skeleton: Identifier
    parents: list[str] = Field(default_factory=list, description="Processes this one extends, nearest first.")
    title: Label
    description: Label | None
    legal_basis: list[LegalBasis]
    classification: str
    fee: Fee | None
    portfolio: Portfolio | None = None
    roles: dict[str, RoleDef]
    intake_roles: list[str]
    fields: dict[str, ResolvedField]
    phases: list[ResolvedPhase]
    letters: dict[str, ResolvedLetter]
    templates: dict[str, str] = Field(description="Template sources by name.")
    processing_deadline: Deadline | None
    appeal: AppealDef | None
    case_title: str | None
    application_checks: list[Check] = Field(default_factory=list)
    party: PartyFields = Field(default_factory=PartyFields)
    duplicates: Duplicates | None = None
    escalation: list[EscalationRule] = Field(default_factory=list)
    team: str | None = None
    scheme: SchemeDef | None = None
