"""Fold a process into its skeleton: the `extends` step of loading.

The result is a `ResolvedProcess` that no longer refers to files, plus a `SourceMap`
that remembers where each part was written, so validation can point at the right line
whether a step came from the skeleton or the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import TemplateError, nodes

from engine.definitions.model import (
    Check,
    Deadline,
    Duplicates,
    EscalationRule,
    Fee,
    LegalBasis,
    LetterDef,
    Portfolio,
    ProcessDef,
    ResolvedField,
    ResolvedLetter,
    ResolvedPhase,
    ResolvedProcess,
    ResolvedStep,
    RoleDef,
    SchemeDef,
    SkeletonDef,
    StepChange,
    StepDef,
    TemplateRef,
)
from engine.definitions.problems import Location, Problem, known_names, make_problem
from engine.definitions.source import Loc, SourceFile
from engine.definitions.templates import letter_environment
from engine.i18n import Language, Text

MAX_TEMPLATE_BYTES = 200_000


LETTER_CHECK_ENVIRONMENT = letter_environment()

SourceKey = tuple[str, ...]


def phase_key(index: int) -> SourceKey:
    """Return the source key of the phase at `index`; phases are keyed by position, so a repeated id keeps both."""
    return ("phase", str(index))


def transition_key(phase_index: int, index: int) -> SourceKey:
    return ("transition", str(phase_index), str(index))


def step_key(step_id: str, occurrence: int = 1) -> SourceKey:
    """Return the source key of the `occurrence`-th step with id `step_id`, counted in process order."""
    return ("step", step_id) if occurrence == 1 else ("step", step_id, str(occurrence))


@dataclass
class SourceMap:
    """Where each part of a resolved process was written: logical key → (file, path in file)."""

    entries: dict[SourceKey, tuple[SourceFile, Loc]] = field(default_factory=dict)
    default: tuple[SourceFile, Loc] | None = None
    # Steps that a process removed, with the place of the `remove:` that did it.
    removed_steps: dict[str, Location] = field(default_factory=dict)
    # Steps that a process inserts or replaces at an anchor that does not exist, with their
    # source keys. They are not part of the process, but validation still checks their content.
    unplaced_steps: list[tuple[ResolvedStep, SourceKey]] = field(default_factory=list)

    def unplaced_ids(self) -> set[str]:
        return {step.id for step, _ in self.unplaced_steps}

    def add(self, key: SourceKey, source: SourceFile, loc: Loc) -> None:
        self.entries[key] = (source, loc)

    def location(self, key: SourceKey, *sub: str | int, use_key: bool = False) -> Location:
        entry = self.entries.get(key) or self.default
        if entry is None:
            return Location("<unknown>")
        source, loc = entry
        return source.location((*loc, *sub), key=use_key)


@dataclass
class LoadedSkeleton:
    definition: SkeletonDef
    source: SourceFile


@dataclass
class LoadedProcess:
    definition: ProcessDef
    source: SourceFile


@dataclass
class Resolution:
    process: ResolvedProcess | None
    sources: SourceMap
    problems: list[Problem]


def _resolved_step(step: StepDef, origin: str) -> ResolvedStep:
    return ResolvedStep(**step.model_dump(), origin=origin)


_REFERENCE_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


def template_references(tree: nodes.Template) -> list[tuple[str | None, int, bool]]:
    """List the templates `tree` extends, includes or imports: (name, line, may be missing).

    The name is None when the template computes it, which static checks cannot follow.
    """
    found: list[tuple[str | None, int, bool]] = []
    for node in tree.find_all(_REFERENCE_NODES):
        target = getattr(node, "template", None)
        optional = bool(getattr(node, "ignore_missing", False))
        items = target.items if isinstance(target, nodes.Tuple | nodes.List) else [target]
        names = [item.value for item in items if isinstance(item, nodes.Const) and isinstance(item.value, str)]
        if names and len(names) == len(items):
            found.extend((name, node.lineno, optional) for name in names)
        else:
            found.append((None, node.lineno, optional))
    return found


class _TemplateCollector:
    """Collector of template files and everything they extend, include or import, relative to the root.

    A problem in a template file is reported at its line in that file. A template that cannot
    be found is reported where it is named: in the YAML file or in the template that names it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sources: dict[str, str] = {}
        self.failed: set[str] = set()
        self.problems: list[Problem] = []

    def name_for(self, definition_file: Path, relative: str) -> str:
        path = (definition_file.parent / relative).resolve()
        try:
            return PurePosixPath(path.relative_to(self.root.resolve())).as_posix()
        except ValueError:
            return PurePosixPath(path).as_posix()

    def collect(self, name: str, location: Location, letter: str) -> None:
        """Read template `name`, named at `location` for `letter`, and the templates it uses."""
        pending: list[tuple[str, Location, bool]] = [(name, location, False)]
        while pending:
            current, where, optional = pending.pop()
            if current in self.sources or current in self.failed:
                continue
            source = self._read(current, where, letter, optional)
            if source is None:
                # An `ignore missing` include that finds no file is no failure, so a later
                # required reference to the same file is still reported.
                if not optional:
                    self.failed.add(current)
                continue
            try:
                tree = LETTER_CHECK_ENVIRONMENT.parse(source, name=current)
            except TemplateError as error:
                self.failed.add(current)
                message = error.message or type(error).__name__
                self._problem(
                    Location(current, getattr(error, "lineno", None) or 1),
                    current,
                    letter,
                    Text(f"syntaksfejl; Jinja2 melder: {message}", f"syntax error: {message}"),
                    Text(
                        "Ret syntaksen på linjen; tjek at hver {{ }}, {% %} og {% block %} er lukket.",
                        "Correct the syntax on this line; check that every {{ }}, {% %} and {% block %} is closed.",
                    ),
                )
                continue
            self.sources[current] = source
            for reference, line, reference_optional in template_references(tree):
                if reference is None:
                    self._problem(
                        Location(current, line),
                        current,
                        letter,
                        Text(
                            "navnet på en skabelon i extends, include eller import skal være en fast tekst",
                            "the name of a template in extends, include or import must be a fixed text",
                        ),
                        Text(
                            'Skriv stien i anførselstegn, fx {% include "skeletons/letters/_header.da.md.j2" %}.',
                            'Write the path in quotes, e.g. {% include "skeletons/letters/_header.da.md.j2" %}.',
                        ),
                    )
                    continue
                pending.append((reference, Location(current, line), reference_optional))

    def _read(self, name: str, location: Location, letter: str, optional: bool) -> str | None:
        """Return the text of template `name`, or None after reporting why it cannot be read."""
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            self._problem(
                location,
                name,
                letter,
                Text(
                    "skabelonen ligger uden for definitionsmappen", "the template lies outside the definitions folder"
                ),
                Text(
                    "Læg skabelonen i definitionsmappen, og ret stien.",
                    "Move the template into the definitions folder, and correct the path.",
                ),
            )
            return None
        if not path.is_file():
            if not optional:
                self._problem(
                    location,
                    name,
                    letter,
                    Text("filen findes ikke", "the file does not exist"),
                    Text(
                        "Opret filen, eller ret stien. Stier i YAML er relative til YAML-filen, og stier i "
                        "{% extends %} og {% include %} er relative til definitionsmappen.",
                        "Create the file, or correct the path. Paths in YAML are relative to the YAML file, and "
                        "paths in {% extends %} and {% include %} are relative to the definitions folder.",
                    ),
                )
            return None
        raw = path.read_bytes()
        if len(raw) > MAX_TEMPLATE_BYTES:
            self._problem(
                Location(name),
                name,
                letter,
                Text(
                    f"filen fylder mere end {MAX_TEMPLATE_BYTES} byte",
                    f"the file has more than {MAX_TEMPLATE_BYTES} bytes",
                ),
                Text(
                    "Gør skabelonen kortere, eller del den op med {% include %}.",
                    "Shorten the template, or split it up with {% include %}.",
                ),
            )
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = raw.count(b"\n", 0, error.start) + 1
            column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
            self._problem(
                Location(name, line, column),
                name,
                letter,
                Text(
                    f"filen er ikke gyldig UTF-8 (byte {error.start})",
                    f"the file is not valid UTF-8 (byte {error.start})",
                ),
                Text("Gem filen som UTF-8 i editoren.", "Save the file as UTF-8 in your editor."),
            )
            return None

    def _problem(self, location: Location, template: str, letter: str, detail: Text, fix: Text) -> None:
        self.problems.append(make_problem("SF311", location, template=template, letter=letter, detail=detail, fix=fix))


class _Resolver:
    """Builds one resolved process, step by step; each method covers one section of the YAML."""

    def __init__(self, skeleton: LoadedSkeleton, process: LoadedProcess | None, root: Path) -> None:
        self.skeleton = skeleton
        self.process = process
        self.sources = SourceMap()
        self.sources.default = (process.source, ()) if process else (skeleton.source, ())
        self.problems: list[Problem] = []
        self.templates = _TemplateCollector(root)
        self.roles: dict[str, RoleDef] = {}
        self.fields: dict[str, ResolvedField] = {}
        self.phases: list[dict[str, Any]] = []
        self.letters: dict[str, dict[str, Any]] = {}
        base = skeleton.definition
        self.processing_deadline = base.processing_deadline
        self.appeal = base.appeal
        self.case_title = base.case_title
        self.application_checks: list[Check] = []
        self.ancestors: list[LoadedProcess] = []
        self.legal_basis: list[LegalBasis] | None = None
        self.classification: str | None = None
        self.fee: Fee | None = None
        self.portfolio: Portfolio | None = None
        self.duplicates: Duplicates | None = None
        self.escalation: list[EscalationRule] = list(base.escalation)
        self.team: str | None = None
        self.scheme: SchemeDef | None = None

    def duplicate(self, location: Location, kind: Text, name: str, key: SourceKey) -> None:
        self.problems.append(make_problem("SF301", location, kind=kind, name=name, first=self.sources.location(key)))

    # The skeleton ----------------------------------------------------------------------------

    def take_skeleton(self) -> None:
        base, source = self.skeleton.definition, self.skeleton.source
        for role_id, role in base.roles.items():
            self.roles[role_id] = role
            self.sources.add(("role", role_id), source, ("roles", role_id))
        for field_id, definition in base.fields.items():
            self.fields[field_id] = ResolvedField(**definition.model_dump(), origin="skeleton")
            self.sources.add(("field", field_id), source, ("fields", field_id))
        occurrences: dict[str, int] = {}
        for phase_index, phase in enumerate(base.phases):
            self.phases.append(
                {"definition": phase, "steps": [_resolved_step(step, "skeleton") for step in phase.steps]}
            )
            self.sources.add(phase_key(phase_index), source, ("phases", phase_index))
            for step_index, step in enumerate(phase.steps):
                occurrences[step.id] = occurrences.get(step.id, 0) + 1
                self.sources.add(
                    step_key(step.id, occurrences[step.id]), source, ("phases", phase_index, "steps", step_index)
                )
            for transition_index, _ in enumerate(phase.next):
                self.sources.add(
                    transition_key(phase_index, transition_index),
                    source,
                    ("phases", phase_index, "next", transition_index),
                )
        for letter_id, letter in base.letters.items():
            self.letters[letter_id] = _letter_entry(letter_id, letter, "skeleton", source, self.templates)
            self.sources.add(("letter", letter_id), source, ("letters", letter_id))
        for key in ("processing_deadline", "appeal", "case_title", "party", "escalation"):
            self.sources.add((key,), source, (key,))

    # The process -----------------------------------------------------------------------------

    def take_process(self, process: LoadedProcess) -> None:
        definition, source = process.definition, process.source
        for role_id, role in definition.roles.items():
            if role_id in self.roles:
                self.duplicate(
                    source.location(("roles", role_id), key=True), Text("Rolle", "Role"), role_id, ("role", role_id)
                )
                continue
            self.roles[role_id] = role
            self.sources.add(("role", role_id), source, ("roles", role_id))

        for field_id, field_def in definition.fields.items():
            if field_id in self.fields:
                location = source.location(("fields", field_id), key=True)
                self.duplicate(location, Text("Felt", "Field"), field_id, ("field", field_id))
                continue
            self.fields[field_id] = ResolvedField(**field_def.model_dump(), origin="process")
            self.sources.add(("field", field_id), source, ("fields", field_id))

        self.override_fields(definition, source)
        _apply_step_changes(
            definition, source, self.phases, self.sources, self.problems, self.skeleton.definition.skeleton
        )
        self.change_letters(definition, source)
        self.set_step_deadlines(definition, source)

        for index, check in enumerate(definition.application_checks):
            check_key = ("application_check", str(len(self.application_checks)))
            self.sources.add(check_key, source, ("application_checks", index))
            self.application_checks.append(check)
        for name in (
            "processing_deadline",
            "appeal",
            "case_title",
            "legal_basis",
            "classification",
            "fee",
            "portfolio",
            "duplicates",
            "team",
            "escalation",
            "scheme",
        ):
            value = getattr(definition, name)
            if value is not None:
                setattr(self, name, value)
                self.sources.add((name,), source, (name,))

    def override_fields(self, definition: ProcessDef, source: SourceFile) -> None:
        for field_id, override in definition.field_overrides.items():
            loc: Loc = ("field_overrides", field_id)
            current = self.fields.get(field_id)
            if current is None:
                known = known_names(self.fields, field_id)
                self.problems.append(make_problem("SF306", source.location(loc, key=True), name=field_id, known=known))
                continue
            # Iterating keeps `label` and `help` as models; model_dump would turn them into dicts,
            # and model_copy does not validate its update.
            changes = {name: value for name, value in override if value is not None}
            if override.required is not None:
                self.sources.add(("field_required", field_id), source, (*loc, "required"))
            if override.required is False and current.required:
                self.problems.append(
                    make_problem(
                        "SF321",
                        source.location((*loc, "required")),
                        name=field_id,
                        detail=Text(
                            "et felt, som skelettet kræver, kan ikke gøres valgfrit",
                            "a required skeleton field cannot be made optional",
                        ),
                    )
                )
                changes.pop("required")
            origin = "changed" if current.origin == "skeleton" else current.origin
            self.fields[field_id] = current.model_copy(update={**changes, "origin": origin})

    def change_letters(self, definition: ProcessDef, source: SourceFile) -> None:
        for letter_id, change in definition.letters.items():
            loc: Loc = ("letters", letter_id)
            existing = self.letters.get(letter_id)
            if existing is None:
                # Without both keys it is no new letter, so most likely a misspelt inherited one.
                if change.label is None or change.template is None:
                    known = known_names(self.letters, letter_id)
                    self.problems.append(
                        make_problem("SF310", source.location(loc, key=True), name=letter_id, known=known)
                    )
                    continue
                new_letter = LetterDef(label=change.label, template=change.template)
                self.letters[letter_id] = _letter_entry(letter_id, new_letter, "process", source, self.templates)
                self.sources.add(("letter", letter_id), source, loc)
                continue
            if change.label is not None:
                existing["label"] = change.label
            if change.template is not None:
                existing["templates"] = _template_names(letter_id, change.template, source, self.templates)
                existing["origin"] = "changed" if existing["origin"] == "skeleton" else existing["origin"]
                self.sources.add(("letter", letter_id), source, loc)

    def set_step_deadlines(self, definition: ProcessDef, source: SourceFile) -> None:
        for step_id, deadline in definition.step_deadlines.items():
            found = _find_step(self.phases, step_id)
            if found is None:
                if not self.set_unplaced_deadline(step_id, deadline):
                    self.problems.append(
                        make_problem(
                            "SF302",
                            source.location(("step_deadlines", step_id), key=True),
                            name=step_id,
                            known=known_names(_all_step_ids(self.phases), step_id, sort=False),
                        )
                    )
                    continue
                self.sources.add(("step_deadline", step_id), source, ("step_deadlines", step_id))
                continue
            phase_entry, index = found
            step = phase_entry["steps"][index]
            shortened = _deadline_weakening(step.deadline, deadline) if step.locked else None
            if shortened is not None:
                self.problems.append(
                    make_problem(
                        "SF329",
                        source.location(("step_deadlines", step_id)),
                        name=step_id,
                        skeleton=self.skeleton.definition.skeleton,
                        detail=shortened,
                    )
                )
                continue
            origin = "changed" if step.origin == "skeleton" else step.origin
            phase_entry["steps"][index] = step.model_copy(update={"deadline": deadline, "origin": origin})
            self.sources.add(("step_deadline", step_id), source, ("step_deadlines", step_id))

    def set_unplaced_deadline(self, step_id: str, deadline: Deadline) -> bool:
        """Give an unplaced step its deadline, so that it is validated; False when no unplaced step has the id."""
        unplaced = self.sources.unplaced_steps
        for index, (step, key) in enumerate(unplaced):
            if step.id == step_id:
                unplaced[index] = (step.model_copy(update={"deadline": deadline}), key)
                return True
        return False

    # The result ------------------------------------------------------------------------------

    def build(self) -> ResolvedProcess:
        base = self.skeleton.definition
        phases = [
            ResolvedPhase(
                id=entry["definition"].id,
                label=entry["definition"].label,
                description=entry["definition"].description,
                steps=entry["steps"],
                next=entry["definition"].next,
                final=entry["definition"].final,
            )
            for entry in self.phases
        ]
        letters = {letter_id: ResolvedLetter(**entry) for letter_id, entry in self.letters.items()}
        common: dict[str, Any] = {
            "skeleton": base.skeleton,
            "roles": self.roles,
            "intake_roles": base.intake_roles,
            "fields": self.fields,
            "phases": phases,
            "letters": letters,
            "templates": dict(sorted(self.templates.sources.items())),
            "processing_deadline": self.processing_deadline,
            "appeal": self.appeal,
            "case_title": self.case_title,
            "application_checks": self.application_checks,
            "party": base.party,
            "duplicates": self.duplicates,
            "escalation": self.escalation,
            "team": self.team,
            "scheme": self.scheme,
        }
        if self.process is None:
            # A bare skeleton is validated like a process that changes nothing.
            return ResolvedProcess(
                id=base.skeleton,
                title=base.title,
                description=base.description,
                legal_basis=[],
                classification="00.00.00",
                fee=None,
                **common,
            )
        definition = self.process.definition
        for key in ("legal_basis", "classification"):
            if getattr(self, key) is None:
                # Neither the process nor a process it extends gives it.
                self.problems.append(make_problem("SF201", self.process.source.location(()), key=key))
        return ResolvedProcess(
            id=definition.process,
            title=definition.title,
            description=definition.description,
            parents=list(reversed([ancestor.definition.process for ancestor in self.ancestors])),
            legal_basis=self.legal_basis or [],
            classification=self.classification or "00.00.00",
            fee=self.fee,
            portfolio=self.portfolio,
            **common,
        )


def resolve(
    skeleton: LoadedSkeleton,
    process: LoadedProcess | None,
    root: Path,
    ancestors: Sequence[LoadedProcess] = (),
) -> Resolution:
    """Resolve `process` against `skeleton`; with `process=None`, resolve the bare skeleton.

    `ancestors` are the processes that `process` extends, from the one that extends the
    skeleton down to its direct parent; their changes are applied first, in that order.
    """
    resolver = _Resolver(skeleton, process, root)
    resolver.ancestors = list(ancestors)
    resolver.take_skeleton()
    for ancestor in ancestors:
        resolver.take_process(ancestor)
    if process is not None:
        resolver.take_process(process)
    resolver.problems.extend(resolver.templates.problems)
    return Resolution(process=resolver.build(), sources=resolver.sources, problems=resolver.problems)


def _template_names(
    letter_id: str, ref: TemplateRef, source: SourceFile, templates: _TemplateCollector
) -> dict[Language, str]:
    """Name the letter's template per language and collect each; a template that fails keeps its name."""
    names: dict[Language, str] = {}
    for language in ("da", "en"):
        relative = getattr(ref, language)
        if relative is None:
            continue
        name = templates.name_for(source.path, relative)
        templates.collect(name, source.location(("letters", letter_id, "template", language)), letter_id)
        names[language] = name
    return names


def _letter_entry(
    letter_id: str, letter: LetterDef, origin: str, source: SourceFile, templates: _TemplateCollector
) -> dict[str, Any]:
    names = _template_names(letter_id, letter.template, source, templates)
    return {
        "label": letter.label,
        "templates": names,
        "recipient": letter.recipient,
        "locked": letter.locked,
        "required_blocks": list(letter.required_blocks),
        "locked_blocks": list(letter.locked_blocks),
        "base_templates": dict(names) if letter.locked else {},
        "origin": origin,
    }


def _shortest_days(deadline: Deadline) -> int:
    """Return the fewest calendar days a deadline can span, whatever day it starts on.

    Months can be as short as February's 28 days, and every five working days after the
    first include a weekend. Moves past holidays only make a deadline longer.
    """
    if deadline.unit == "weeks":
        return 7 * deadline.value
    if deadline.unit == "months":
        return 28 * deadline.value
    if deadline.unit == "working_days" and deadline.value > 0:
        return deadline.value + 2 * ((deadline.value - 1) // 5)
    return deadline.value


def _deadline_weakening(original: Deadline | None, replacement: Deadline | None) -> Text | None:
    """Describe how a locked step's new deadline shortens the time the safeguard gives, or None."""
    if original is None or replacement is None or _shortest_days(replacement) >= _shortest_days(original):
        return None
    before = f"{original.value} {original.unit}"
    after = f"{replacement.value} {replacement.unit}"
    return Text(f"fristen afkortes fra {before} til {after}", f"the deadline is shortened from {before} to {after}")


def _weakenings(original: ResolvedStep, replacement: StepDef) -> list[Text]:
    """List how `replacement` would weaken the locked step `original`; empty when it keeps the safeguard."""
    found: list[Text] = []
    if replacement.id != original.id:
        found.append(Text(f"id'et skal forblive '{original.id}'", f"the id must stay '{original.id}'"))
    if replacement.kind != original.kind:
        found.append(
            Text(
                f"typen '{original.kind}' bliver til '{replacement.kind}'",
                f"the kind '{original.kind}' becomes '{replacement.kind}'",
            )
        )
    if not replacement.required:
        found.append(Text("trinnet bliver valgfrit", "the step becomes optional"))
    if replacement.when is not None and replacement.when != original.when:
        found.append(
            Text("trinnet får en betingelse og kan springes over", "the step gets a condition and can be skipped")
        )
    for name, da, en in (
        ("role", "rollen", "the role"),
        ("approves", "det godkendte trin", "the approved step"),
        ("letter", "brevet", "the letter"),
        ("action", "handlingen", "the action"),
    ):
        before, after = getattr(original, name), getattr(replacement, name)
        if before is not None and after is None:
            found.append(Text(f"{da} '{before}' falder væk", f"{en} '{before}' is dropped"))
        elif before is not None and after != before:
            found.append(
                Text(f"{da} ændres fra '{before}' til '{after}'", f"{en} changes from '{before}' to '{after}'")
            )
    if original.eyes is not None and replacement.eyes is None:
        found.append(
            Text(
                f"erstatningen har ingen 'eyes', og trinnet har {original.eyes} øjne",
                f"the replacement has no 'eyes', and the step has {original.eyes} eyes",
            )
        )
    elif original.eyes is not None and replacement.eyes is not None and replacement.eyes < original.eyes:
        found.append(
            Text(
                f"godkendelsen sænkes fra {original.eyes} til {replacement.eyes} øjne",
                f"the approval is lowered from {original.eyes} to {replacement.eyes} eyes",
            )
        )
    if original.deadline is not None and replacement.deadline is None:
        found.append(Text("fristen falder væk", "the deadline is dropped"))
    shortened = _deadline_weakening(original.deadline, replacement.deadline)
    if shortened is not None:
        found.append(shortened)
    return found


def _all_step_ids(phases: list[dict[str, Any]]) -> list[str]:
    return [step.id for entry in phases for step in entry["steps"]]


def _find_step(phases: list[dict[str, Any]], step_id: str) -> tuple[dict[str, Any], int] | None:
    for entry in phases:
        for index, step in enumerate(entry["steps"]):
            if step.id == step_id:
                return entry, index
    return None


def _operation(change: StepChange) -> tuple[str, str] | None:
    """Return the change's one operation and its anchor step, or None when it has not exactly one."""
    operations = [
        (name, value)
        for name, value in (
            ("insert_after", change.insert_after),
            ("insert_before", change.insert_before),
            ("replace", change.replace),
            ("remove", change.remove),
        )
        if value is not None
    ]
    return operations[0] if len(operations) == 1 else None


def _locked_problem(
    operation: str, anchor_step: ResolvedStep, change: StepChange, skeleton_id: str, location: Location
) -> Problem | None:
    """Return the problem with changing a locked step this way, or None when the change is allowed."""
    if not anchor_step.locked:
        return None
    if operation == "remove":
        return make_problem(
            "SF303", location, name=anchor_step.id, skeleton=skeleton_id, operation=Text("fjernes", "removed")
        )
    if operation == "replace" and change.step is not None:
        weakenings = _weakenings(anchor_step, change.step)
        if weakenings:
            return make_problem(
                "SF329",
                location,
                name=anchor_step.id,
                skeleton=skeleton_id,
                detail=Text("; ".join(w.da for w in weakenings), "; ".join(w.en for w in weakenings)),
            )
    return None


def _apply_step_changes(
    definition: ProcessDef,
    source: SourceFile,
    phases: list[dict[str, Any]],
    sources: SourceMap,
    problems: list[Problem],
    skeleton_id: str,
) -> None:
    for change_index, change in enumerate(definition.steps):
        loc: Loc = ("steps", change_index)
        found_operation = _operation(change)
        if found_operation is None:
            problems.append(make_problem("SF318", source.location(loc)))
            continue
        operation, anchor = found_operation

        if operation == "remove" and change.step is not None:
            problems.append(
                make_problem("SF200", source.location((*loc, "step"), key=True), key="step", allowed="remove")
            )
            continue

        found = _find_step(phases, anchor)
        if found is None:
            # An anchor that is itself an unplaced step has its own SF302 already.
            if anchor not in sources.unplaced_ids():
                known = known_names(_all_step_ids(phases), anchor, sort=False)
                problems.append(make_problem("SF302", source.location((*loc, operation)), name=anchor, known=known))
            if operation != "remove" and change.step is not None:
                _keep_unplaced(change.step, source, loc, phases, sources, problems)
            continue
        phase_entry, index = found
        anchor_step: ResolvedStep = phase_entry["steps"][index]

        where = source.location((*loc, "step" if operation == "replace" else operation))
        locked = _locked_problem(operation, anchor_step, change, skeleton_id, where)
        if locked is not None:
            problems.append(locked)
            continue

        if operation == "remove":
            del phase_entry["steps"][index]
            sources.entries.pop(("step", anchor), None)
            sources.removed_steps[anchor] = source.location((*loc, "remove"))
            continue
        if change.step is None:
            problems.append(make_problem("SF201", source.location(loc), key="step"))
            continue

        new_step = _resolved_step(change.step, "process")
        if anchor_step.locked and operation == "replace":
            # A permitted replacement of a locked step stays locked for processes that extend this one.
            new_step = new_step.model_copy(update={"locked": True})
        existing = _find_step(phases, new_step.id)
        if existing is not None and not (operation == "replace" and new_step.id == anchor):
            problems.append(
                make_problem(
                    "SF301",
                    source.location((*loc, "step", "id")),
                    kind=Text("Trin", "Step"),
                    name=new_step.id,
                    first=sources.location(("step", new_step.id)),
                )
            )
            continue

        _place(phase_entry["steps"], index, operation, new_step)
        if operation == "replace" and new_step.id != anchor:
            sources.entries.pop(("step", anchor), None)
        sources.add(("step", new_step.id), source, (*loc, "step"))


def _keep_unplaced(
    step: StepDef,
    source: SourceFile,
    loc: Loc,
    phases: list[dict[str, Any]],
    sources: SourceMap,
    problems: list[Problem],
) -> None:
    """Keep a step whose anchor does not exist, so that its own content is still validated."""
    first: Location | None = None
    if _find_step(phases, step.id) is not None:
        first = sources.location(("step", step.id))
    for unplaced, unplaced_key in sources.unplaced_steps:
        if unplaced.id == step.id:
            first = sources.location(unplaced_key)
    if first is not None:
        duplicate = make_problem(
            "SF301", source.location((*loc, "step", "id")), kind=Text("Trin", "Step"), name=step.id, first=first
        )
        problems.append(duplicate)
        return
    key: SourceKey = ("unplaced_step", str(len(sources.unplaced_steps)))
    sources.add(key, source, (*loc, "step"))
    sources.unplaced_steps.append((_resolved_step(step, "process"), key))


def _place(steps: list[ResolvedStep], index: int, operation: str, step: ResolvedStep) -> None:
    if operation == "replace":
        steps[index] = step
    elif operation == "insert_after":
        steps.insert(index + 1, step)
    else:
        steps.insert(index, step)
