"""Semantic checks of a resolved process; each check collects every offender it finds.

Shape errors (unknown keys, wrong types) are caught earlier by the pydantic models.
These checks need the whole resolved process: whether a referenced phase, field, role,
letter or action exists, whether guards and templates compile, and whether a process
kept the safeguards its skeleton locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError
from pydantic import ValidationError

from engine.actions import ACTIONS
from engine.calendar import DayRule, DeadlineUnit
from engine.definitions.expressions import GUARD_NAMES, ExpressionError, compile_guard
from engine.definitions.fields import FIELD_TYPES, OPTION_NAMES
from engine.definitions.graph import check_graph
from engine.definitions.model import AUTOMATIC_KINDS, Deadline, ResolvedProcess, ResolvedStep
from engine.definitions.problems import Location, Problem, make_problem
from engine.definitions.resolve import SourceKey, SourceMap
from engine.definitions.templates import LETTER_NAMES, TemplateProblem, analyse_template, title_template
from engine.i18n import Text


def _known(names: Iterable[str]) -> Text:
    listed = ", ".join(sorted(names))
    return Text(listed, listed) if listed else Text("(ingen)", "(none)")


class _Checker:
    def __init__(self, process: ResolvedProcess, sources: SourceMap) -> None:
        self.process = process
        self.sources = sources
        self.problems: list[Problem] = []
        self.step_ids = {step.id for phase in process.phases for step in phase.steps}

    def at(self, key: SourceKey, *sub: str | int, use_key: bool = False) -> Location:
        return self.sources.location(key, *sub, use_key=use_key)

    def at_override(self, override: SourceKey, key: SourceKey, name: str, *, use_key: bool = False) -> Location:
        """Point at the process's override of `name` when it has one, else at `name` in the definition."""
        if override in self.sources.entries:
            return self.at(override)
        return self.at(key, name, use_key=use_key)

    def add(self, code: str, location: Location, **params: Any) -> None:
        self.problems.append(make_problem(code, location, **params))

    def run(self) -> list[Problem]:
        for index, check in enumerate(self.process.application_checks):
            self.check_guard(check.rule, self.at(("application_check", str(index)), "rule"))
        self.check_fields()
        self.check_phases()
        check_graph(self.process, self.add, self.at)
        self.check_steps()
        self.check_letters()
        self.check_deadlines()
        self.check_roles()
        self.check_case_title()
        return self.problems

    # Fields ------------------------------------------------------------------------------

    def check_fields(self) -> None:
        for field_id, field in self.process.fields.items():
            key = ("field", field_id)
            field_type = FIELD_TYPES.get(field.type)
            if field_type is None:
                self.add("SF304", self.at(key, "type"), name=field.type, known=_known(FIELD_TYPES))
                continue
            for option in OPTION_NAMES:
                value = getattr(field, option)
                if value not in (None, False) and option not in field_type.allowed_options:
                    self.add(
                        "SF316",
                        self.at(key, option, use_key=True),
                        name=field_id,
                        type=field.type,
                        detail=f"'{option}' does not apply to this type",
                    )
            for detail in field_type.check_definition(field):
                self.add("SF316", self.at(key, "type"), name=field_id, type=field.type, detail=detail)
            if field.required and field.source != "application":
                self.add(
                    "SF316",
                    self.at_override(("field_required", field_id), key, "required", use_key=True),
                    name=field_id,
                    type=field.type,
                    detail="'required' applies only to fields with source: application; "
                    "require caseworker fields in the task's form",
                )

    # Phases and transitions ---------------------------------------------------------------

    def check_phases(self) -> None:
        phases = self.process.phases
        if not phases:
            self.add("SF201", self.sources.location(("process",)), key="phases")
            return
        seen: dict[str, Location] = {}
        for phase in phases:
            location = self.at(("phase", phase.id), "id")
            if phase.id in seen:
                self.add("SF301", location, kind=Text("Fase", "Phase"), name=phase.id, first=seen[phase.id])
            seen.setdefault(phase.id, location)

        phase_ids = {phase.id for phase in phases}
        for phase in phases:
            key = ("phase", phase.id)
            if phase.final and phase.next:
                self.add(
                    "SF320",
                    self.at(key, "next", use_key=True),
                    name=phase.id,
                    detail="a final phase cannot have transitions ('next')",
                )
            if not phase.final and not phase.next:
                self.add(
                    "SF320",
                    self.at(key, "id"),
                    name=phase.id,
                    detail="a phase that is not final needs at least one transition in 'next'",
                )
            if phase.final and any(step.required and step.kind not in AUTOMATIC_KINDS for step in phase.steps):
                self.add(
                    "SF320",
                    self.at(key, "steps", use_key=True),
                    name=phase.id,
                    detail="a final phase may only have automatic steps",
                )
            for index, transition in enumerate(phase.next):
                transition_key = ("transition", phase.id, str(index))
                if transition.to not in phase_ids:
                    self.add("SF305", self.at(transition_key, "to"), name=transition.to, known=_known(phase_ids))
                if transition.when is not None:
                    self.check_guard(transition.when, self.at(transition_key, "when"))
        if phases[0].final:
            self.add(
                "SF320",
                self.at(("phase", phases[0].id), "id"),
                name=phases[0].id,
                detail="the first phase is where cases start and cannot be final",
            )

    def guard_names(self) -> set[str]:
        return set(self.process.fields) | set(GUARD_NAMES)

    def check_guard(self, expression: str, location: Location) -> None:
        try:
            guard = compile_guard(expression)
        except ExpressionError as error:
            self.add("SF307", location, expression=expression, detail=error.detail)
            return
        for name in sorted(guard.names - self.guard_names()):
            self.add("SF306", location, name=name, known=_known(self.guard_names()))

    # Steps --------------------------------------------------------------------------------

    def check_steps(self) -> None:
        seen: dict[str, Location] = {}
        earlier: set[str] = set()
        for phase in self.process.phases:
            for step in phase.steps:
                key = ("step", step.id)
                location = self.at(key, "id")
                if step.id in seen:
                    self.add("SF301", location, kind=Text("Trin", "Step"), name=step.id, first=seen[step.id])
                seen.setdefault(step.id, location)
                self.check_step(step, earlier)
                earlier.add(step.id)

    def _misplaced(self, step: ResolvedStep, names: Iterable[str]) -> None:
        for name in names:
            value = getattr(step, name)
            if value not in (None, [], {}):
                self.add(
                    "SF315",
                    self.at(("step", step.id), name, use_key=True),
                    name=step.id,
                    kind=step.kind,
                    detail=f"'{name}' does not apply to a step of kind '{step.kind}'",
                )

    def _require(self, step: ResolvedStep, name: str) -> bool:
        if getattr(step, name) in (None, [], {}):
            self.add(
                "SF315",
                self.at(("step", step.id), "kind"),
                name=step.id,
                kind=step.kind,
                detail=f"a step of kind '{step.kind}' needs '{name}'",
            )
            return False
        return True

    def check_conditions(self, step: ResolvedStep) -> None:
        key = ("step", step.id)
        if step.when is not None:
            self.check_guard(step.when, self.at(key, "when"))
        for index, check in enumerate(step.checks):
            self.check_guard(check.rule, self.at(key, "checks", index, "rule"))
        if step.checks and step.kind != "task":
            self.add(
                "SF315",
                self.at(key, "checks", use_key=True),
                name=step.id,
                kind=step.kind,
                detail=Text("'checks' gælder kun opgavetrin (task)", "'checks' apply only to task steps"),
            )

    def check_step(self, step: ResolvedStep, earlier: set[str]) -> None:
        key = ("step", step.id)
        self.check_conditions(step)
        if step.deadline is not None:
            self.check_deadline(step.deadline, self.at_override(("step_deadline", step.id), key, "deadline"))

        if step.kind == "task":
            self._misplaced(step, ("action", "params", "letter", "approves", "eyes"))
            if self._require(step, "role"):
                self.check_role(step.role, self.at(key, "role"))
            self.check_form(step)
        elif step.kind == "action":
            self._misplaced(step, ("form", "letter", "approves", "eyes", "role"))
            if self._require(step, "action"):
                self.check_action(step)
        elif step.kind == "letter":
            self._misplaced(step, ("form", "action", "params", "approves", "eyes", "role"))
            if self._require(step, "letter") and step.letter not in self.process.letters:
                self.add("SF310", self.at(key, "letter"), name=step.letter, known=_known(self.process.letters))
        elif step.kind == "approval":
            self._misplaced(step, ("form", "action", "params", "letter"))
            if self._require(step, "role"):
                self.check_role(step.role, self.at(key, "role"))
            self._require(step, "eyes")
            if self._require(step, "approves"):
                self.check_approval_target(step, earlier)

    def check_form(self, step: ResolvedStep) -> None:
        fields = self.process.fields
        for index, entry in enumerate(step.form):
            location = self.at(("step", step.id), "form", index, "field")
            field = fields.get(entry.field)
            if field is None:
                self.add("SF306", location, name=entry.field, known=_known(fields))
                continue
            if field.source == "system":
                self.add(
                    "SF315",
                    location,
                    name=step.id,
                    kind=step.kind,
                    detail=f"the field '{entry.field}' is filled by an action (source: system), not in a form",
                )
            if entry.required_if is not None:
                self.check_guard(entry.required_if, self.at(("step", step.id), "form", index, "required_if"))

    def check_action(self, step: ResolvedStep) -> None:
        key = ("step", step.id)
        action = ACTIONS.get(step.action or "")
        if action is None:
            self.add("SF308", self.at(key, "action"), name=step.action, known=_known(ACTIONS))
            return
        try:
            params = action.params.model_validate(step.params)
        except ValidationError as error:
            for item in error.errors():
                where = [part for part in item["loc"] if isinstance(part, str | int)]
                self.add(
                    "SF309",
                    self.at(key, "params", *where),
                    action=action.name,
                    detail=f"{'.'.join(str(part) for part in where) or 'params'}: {item['msg']}",
                )
            return
        for use in action.uses(params):
            location = self.at(key, "params", use.param)
            field = self.process.fields.get(use.field)
            if field is None:
                self.add("SF306", location, name=use.field, known=_known(self.process.fields))
                continue
            if field.type not in use.types:
                self.add(
                    "SF309",
                    location,
                    action=action.name,
                    detail=f"'{use.param}' must name a field of type {' or '.join(sorted(use.types))}, "
                    f"but '{use.field}' has type '{field.type}'",
                )
            if use.writes and field.source != "system":
                self.add(
                    "SF309",
                    location,
                    action=action.name,
                    detail=f"the action writes '{use.field}', so that field needs source: system",
                )

    def check_approval_target(self, step: ResolvedStep, earlier: set[str]) -> None:
        location = self.at(("step", step.id), "approves")
        target = step.approves or ""
        if target not in self.step_ids:
            self.add("SF302", location, name=target, known=_known(self.step_ids))
            return
        target_step = next(s for phase in self.process.phases for s in phase.steps if s.id == target)
        if target_step.kind != "task":
            self.add(
                "SF319",
                location,
                name=step.id,
                target=target,
                detail=f"only a task can be approved, and '{target}' is of kind '{target_step.kind}'",
            )
        if target not in earlier:
            self.add(
                "SF319",
                location,
                name=step.id,
                target=target,
                detail="the approved step must come before the approval step",
            )

    # Roles, deadlines ---------------------------------------------------------------------

    def check_role(self, role: str | None, location: Location) -> None:
        if role is not None and role not in self.process.roles:
            self.add("SF314", location, name=role, known=_known(self.process.roles))

    def check_roles(self) -> None:
        for role in self.process.intake_roles:
            self.check_role(role, self.sources.location(("process",)))

    def check_deadline(self, deadline: Deadline, location: Location) -> None:
        units = {unit.value for unit in DeadlineUnit}
        rules = {rule.value for rule in DayRule}
        if deadline.unit not in units:
            listed = ", ".join(sorted(units))
            self.add("SF317", location, detail=f"the unit '{deadline.unit}' is unknown; use one of {listed}")
        if deadline.rule not in rules:
            listed = ", ".join(sorted(rules))
            self.add("SF317", location, detail=f"the rule '{deadline.rule}' is unknown; use one of {listed}")

    def check_deadlines(self) -> None:
        if self.process.processing_deadline is not None:
            self.check_deadline(self.process.processing_deadline, self.at(("processing_deadline",)))
        if self.process.appeal is not None:
            self.check_deadline(self.process.appeal.deadline, self.at(("appeal",), "deadline"))

    def check_case_title(self) -> None:
        if self.process.case_title is None:
            return
        try:
            title_template(self.process.case_title)
        except TemplateError as error:
            line = f" (line {error.lineno})" if isinstance(error, TemplateSyntaxError) else ""
            detail = f"{(error.message or type(error).__name__).rstrip('.')}{line}"
            self.add("SF202", self.at(("case_title",)), key="case_title", detail=detail)

    # Letters ------------------------------------------------------------------------------

    def check_letters(self) -> None:
        allowed = set(LETTER_NAMES) | set(self.process.fields)
        reported: set[tuple[str, str]] = set()
        infos = {}
        for name, source in self.process.templates.items():
            try:
                infos[name] = analyse_template(name, source)
            except TemplateProblem:
                continue  # reported when the template was collected

        for letter_id, letter in self.process.letters.items():
            key = ("letter", letter_id)
            for language, template in letter.templates.items():
                info = infos.get(template)
                if info is None:
                    continue
                for used in self._used_templates(template, infos):
                    for variable in sorted(infos[used].variables - allowed):
                        if (used, variable) in reported:
                            continue
                        reported.add((used, variable))
                        self.add(
                            "SF312",
                            self.at(key, "template", language),
                            template=used,
                            name=variable,
                            known=_known(allowed),
                        )
                if letter.locked:
                    self.check_locked_letter(letter_id, language, template, infos)
            if "da" not in letter.templates and letter.templates:
                self.add("SF201", self.at(key, "template"), key="da")

    @staticmethod
    def _used_templates(name: str, infos: dict[str, Any]) -> list[str]:
        """Return `name` and every template it extends or includes, directly or through others."""
        # NOTE: an included template is checked on its own, so a loop variable of the template
        # that includes it is reported as unknown.
        found: list[str] = []
        pending = [name]
        while pending:
            current = pending.pop(0)
            if current in found or current not in infos:
                continue
            found.append(current)
            pending.extend(sorted(infos[current].referenced))
        return found

    def _chain(self, name: str, infos: dict[str, Any]) -> list[str]:
        chain: list[str] = []
        current: str | None = name
        while current is not None and current in infos and current not in chain:
            chain.append(current)
            current = infos[current].extends
        return chain

    def check_locked_letter(self, letter_id: str, language: str, template: str, infos: dict[str, Any]) -> None:
        letter = self.process.letters[letter_id]
        key = ("letter", letter_id)
        base = letter.base_templates.get(language) or letter.base_templates.get("da")  # type: ignore[call-overload]
        if base is None:
            return
        base_info = infos.get(base)
        if base_info is not None:
            missing = [
                block for block in (*letter.locked_blocks, *letter.required_blocks) if block not in base_info.blocks
            ]
            if missing:
                self.add(
                    "SF313",
                    self.at(key, "template", language),
                    name=letter_id,
                    base=base,
                    detail=f"the skeleton template lacks the blocks {', '.join(missing)}",
                )
        if template == base:
            return
        info = infos.get(template)
        if info is None:
            return
        if base not in self._chain(template, infos):
            self.add(
                "SF313",
                self.at(key, "template", language),
                name=letter_id,
                base=base,
                detail="the template must extend the skeleton's template",
            )
            return
        overridden = sorted(set(letter.locked_blocks) & info.blocks)
        if overridden:
            self.add(
                "SF313",
                self.at(key, "template", language),
                name=letter_id,
                base=base,
                detail=f"the template overrides the locked blocks {', '.join(overridden)}",
            )


def validate_resolved(process: ResolvedProcess, sources: SourceMap) -> list[Problem]:
    """Run every semantic check on a resolved process and return all problems found."""
    return _Checker(process, sources).run()
