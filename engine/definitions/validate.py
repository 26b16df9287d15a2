"""Semantic checks of a resolved process; each check collects every offender it finds.

Shape errors (unknown keys, wrong types) are caught earlier by the pydantic models.
These checks need the whole resolved process: whether a referenced phase, field, role,
letter or action exists, whether guards and templates compile, and whether a process
kept the safeguards its skeleton locks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError

from engine.actions import ACTIONS
from engine.auth import USER_NAME_PATTERN
from engine.calendar import DayRule, DeadlineUnit
from engine.definitions.expressions import (
    GUARD_NAMES,
    ExpressionError,
    compile_guard,
    find_nodes,
    named_lookups,
    outcome_step,
    outcome_steps,
    parse_guard,
    private_accesses,
)
from engine.definitions.fields import FIELD_TYPES, OPTION_NAMES
from engine.definitions.graph import check_graph
from engine.definitions.model import (
    AUTOMATIC_KINDS,
    HEARING_KINDS,
    Deadline,
    EscalationRule,
    ResolvedField,
    ResolvedProcess,
    ResolvedStep,
)
from engine.definitions.problems import (
    Location,
    Problem,
    closest_name,
    known_names,
    listed_names,
    make_problem,
    pydantic_detail,
)
from engine.definitions.resolve import (
    LETTER_CHECK_ENVIRONMENT,
    SourceKey,
    SourceMap,
    phase_key,
    step_key,
    template_references,
    transition_key,
)
from engine.definitions.templates import LETTER_NAMES, letter_environment, title_template
from engine.i18n import Text


def _either(values: Iterable[str], joiner: str) -> str:
    """Join `values` as "a, b or c", with `joiner` as the last word ("or", "eller")."""
    items = list(values)
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} {joiner} {items[-1]}"


def _private_detail(name: str) -> Text:
    return Text(
        f"'{name}' starter med en understregning, og interne Python-attributter er ikke tilgængelige",
        f"'{name}' starts with an underscore, and internal Python attributes are not available",
    )


# Field declarations ------------------------------------------------------------------------

# `FieldType.check_definition` in engine/definitions/fields.py returns English details; these
# patterns give the Danish text for each of them.
_FIELD_DETAILS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"the pattern does not compile \((?P<error>.*)\)"),
        "mønstret er ikke et gyldigt regulært udtryk (Python melder: {error})",
    ),
    (re.compile(r"min_length is greater than max_length"), "min_length er større end max_length"),
    (re.compile(r"min is greater than max"), "min er større end max"),
    (re.compile(r"the bound (?P<bound>\S+) is not a whole number"), "grænsen {bound} er ikke et helt tal"),
    (re.compile(r"min and max do not apply to dates"), "min og max gælder ikke datoer"),
    (re.compile(r"an enum needs a non-empty 'options' list"), "et enum-felt skal have en liste 'options' med værdier"),
    (re.compile(r"duplicate option values: (?P<values>.*)"), "disse værdier står flere gange i 'options': {values}"),
)


def _field_detail(detail: str | Text) -> Text:
    """Return a field-declaration detail from `check_definition` in Danish and English."""
    if isinstance(detail, Text):
        return detail
    for pattern, danish in _FIELD_DETAILS:
        match = pattern.fullmatch(detail)
        if match:
            return Text(danish.format(**match.groupdict()), detail)
    # NOTE: a detail that fields.py adds later without a pattern here stays English in Danish output.
    return Text(detail, detail)


# Comparisons in guards ------------------------------------------------------------------------

# The outcomes of the other kinds, as engine/runtime/commands.py records them.
_KIND_OUTCOMES: dict[str, tuple[str, ...]] = {
    "task": ("done",),
    "approval": ("approved", "rejected"),
    "letter": ("sent",),
    "hearing": ("answered", "partly_answered", "deadline_passed"),
    "party_hearing": ("answered", "partly_answered", "deadline_passed"),
    "timer": ("elapsed", "no_date"),
    "report": ("submitted", "deadline_passed"),
}
# Every step can also be skipped. A guard reads `active` for a step of the case's current round
# that has not finished yet, such as a later step of the same phase.
_COMMON_OUTCOMES = ("skipped", "active")

# Field types whose value in a guard is a `str` (see `FieldType.to_context`).
_TEXT_TYPES = frozenset(
    {
        "text",
        "postcode",
        "cvr",
        "cpr",
        "email",
        "country",
        "species",
        "natura2000_site",
        "harbour",
        "dumping_site",
        "enum",
    }
)
_NUMBER_TYPES = frozenset({"integer", "decimal", "money"})


def _constant(node: nodes.Expr) -> tuple[bool, Any]:
    """Return (True, value) when `node` is a constant such as `'A'`, `8600`, `-5` or `none`."""
    if isinstance(node, nodes.Const):
        return True, node.value
    if isinstance(node, nodes.Neg) and isinstance(node.node, nodes.Const):
        value = node.node.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, -value
    return False, None


# The subject of a comparison in a guard: ("field", field id) or ("outcome", step id).
Subject = tuple[str, str]


def _subject(node: nodes.Expr, fields: dict[str, ResolvedField]) -> Subject | None:
    if isinstance(node, nodes.Name) and node.name in fields:
        return "field", node.name
    step = outcome_step(node)
    return ("outcome", step) if step is not None else None


def _compared_constants(expression: nodes.Expr, fields: dict[str, ResolvedField]) -> Iterator[tuple[Subject, Any]]:
    """Yield (subject, constant) for each `x == c`, `c != x`, `x in [c, ...]` or `x not in [...]`.

    The subject `x` is a field or a step's outcome (`outcome.step` or `outcome['step']`).
    """
    for compare in find_nodes(expression, nodes.Compare):
        left = compare.expr
        for operand in compare.ops:
            right = operand.expr
            if operand.op in ("eq", "ne"):
                for named, other in ((left, right), (right, left)):
                    is_constant, value = _constant(other)
                    subject = _subject(named, fields)
                    if subject is not None and is_constant:
                        yield subject, value
            elif operand.op in ("in", "notin") and isinstance(right, nodes.List | nodes.Tuple):
                subject = _subject(left, fields)
                if subject is not None:
                    for item in right.items:
                        is_constant, value = _constant(item)
                        if is_constant:
                            yield subject, value
            left = right


def _jinja_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _mismatch(name: str, field: ResolvedField, value: Any) -> tuple[Text, Text] | None:
    """Return (detail, fix) when `field` can never equal the constant `value`, else None."""
    if value is None:
        return None
    literal = _jinja_literal(value)
    kind = field.type
    if kind == "enum" and isinstance(value, str):
        options = [option.value for option in field.options or []]
        if not options or value in options:
            return None
        listed = ", ".join(options)
        return (
            Text(
                f"{literal} er ikke en af feltets værdier ({listed})",
                f"{literal} is not one of the field's options ({listed})",
            ),
            Text(
                f"Brug en af værdierne {listed}; store og små bogstaver er forskellige.",
                f"Use one of the options {listed}; upper and lower case differ.",
            ),
        )
    if kind in _TEXT_TYPES and not isinstance(value, str):
        quote = Text(f"Sæt anførselstegn om værdien: '{literal}'.", f"Put quotes around the value: '{literal}'.")
        if isinstance(value, bool):
            return (
                Text(
                    f"et felt af typen {kind} indeholder tekst, ikke true eller false",
                    f"a field of type {kind} contains text, not true or false",
                ),
                quote,
            )
        return (
            Text(
                f"et felt af typen {kind} indeholder tekst, ikke et tal",
                f"a field of type {kind} contains text, not a number",
            ),
            quote,
        )
    if kind in _NUMBER_TYPES and isinstance(value, str):
        return (
            Text(
                f"et felt af typen {kind} indeholder et tal, ikke tekst",
                f"a field of type {kind} contains a number, not text",
            ),
            Text(
                f"Sammenlign med et tal uden anførselstegn, fx {name} >= 10.",
                f"Compare with a number without quotes, e.g. {name} >= 10.",
            ),
        )
    if kind == "boolean" and isinstance(value, str):
        return (
            Text(
                "et felt af typen boolean er true eller false, ikke tekst",
                "a field of type boolean is true or false, not text",
            ),
            Text(
                f"Skriv true eller false uden anførselstegn, eller brug feltet alene: 'when: {name}'.",
                f"Write true or false without quotes, or use the field on its own: 'when: {name}'.",
            ),
        )
    if kind == "date":
        return (
            Text(
                "et felt af typen date indeholder en dato, og en dato er aldrig lig med tekst eller et tal",
                "a field of type date contains a date, and a date never equals text or a number",
            ),
            Text(
                f"Sammenlign med today eller et andet datofelt, fx {name} < today.",
                f"Compare with today or another date field, e.g. {name} < today.",
            ),
        )
    return None


def _possible_outcomes(step: ResolvedStep) -> tuple[str, ...] | None:
    """Return every outcome `step` can have, or None when its action is unknown (SF308)."""
    if step.kind == "action":
        action = ACTIONS.get(step.action or "")
        if action is None:
            return None
        own = action.outcomes
    else:
        own = _KIND_OUTCOMES.get(step.kind, ())
    return (*own, *_COMMON_OUTCOMES)


def _outcome_mismatch(step: ResolvedStep, value: Any) -> tuple[Text, Text] | None:
    """Return (detail, fix) when the outcome of `step` can never equal the constant `value`, else None."""
    possible = _possible_outcomes(step)
    if value is None or possible is None or value in possible:
        return None
    listed_da, listed_en = _either(possible, "eller"), _either(possible, "or")
    if step.kind == "action":
        detail = Text(
            f"trinnet '{step.id}' kører handlingen {step.action}, og dens udfald er {listed_da}",
            f"the step '{step.id}' runs the action {step.action}, whose outcomes are {listed_en}",
        )
    else:
        detail = Text(
            f"trinnet '{step.id}' er af typen {step.kind}, og dets udfald er {listed_da}",
            f"the step '{step.id}' is of kind {step.kind}, whose outcomes are {listed_en}",
        )
    example = (closest_name(value, possible) if isinstance(value, str) else None) or possible[0]
    fix = Text(
        f"Sammenlign med et af udfaldene, fx outcome.{step.id} == '{example}'.",
        f"Compare with one of the outcomes, e.g. outcome.{step.id} == '{example}'.",
    )
    return detail, fix


# Letter templates ---------------------------------------------------------------------------

_UNKNOWN_FILTER_FIX = Text(
    "Tjek stavningen. Brevfiltrene er date, kr, country og label; Jinja2's indbyggede filtre og tests kan også bruges.",
    "Check the spelling. The letter filters are date, kr, country and label; Jinja2's built-in filters and tests "
    "can be used too.",
)
_PRIVATE_FIX = Text(
    "Brug felternes værdier og de navne, Sagsflow giver brevet, uden attributter, der starter med _.",
    "Use the fields and the names Sagsflow gives the letter, without attributes that start with _.",
)
_COMPILE_FIX = Text("Ret skabelonen på linjen.", "Correct the template on this line.")

# The keys of the objects that every letter template can read, as `letter_context` in
# engine/runtime/letters.py builds them. `authority` has the keys of `Authority.as_context` in
# engine/settings.py. `deadlines` is left out, because its keys are the ids of the current
# phase's steps that have a deadline.
LETTER_OBJECT_KEYS: dict[str, tuple[str, ...]] = {
    "case": ("journal_number", "title", "received", "processing_deadline", "language"),
    "process": ("id", "title", "classification", "legal_basis"),
    "authority": ("name", "address", "postcode", "city", "email", "cvr"),
    "appeal": ("body", "how", "period", "deadline"),
    "recipient": ("id_type", "id", "name"),
    # Only in letters that a hearing or party hearing step sends (engine/runtime/letters.py, hearing_context).
    "hearing": ("kind", "party", "deadline", "reply_url", "merged"),
    # Only in the letters of a request case that a scheme's bulk run created (engine/runtime/schemes.py).
    "report": ("period", "deadline", "reply_url"),
}


@dataclass
class _TemplateFacts:
    """Static analysis of one letter template; every line is 1-based in the template file."""

    extends: tuple[str, int] | None
    referenced: frozenset[str]
    blocks: dict[str, int]
    variables: dict[str, int]
    # SF311 problems found in this template: (line, detail, fix).
    problems: list[tuple[int, Text, Text]] = field(default_factory=list)
    # Each `case.x`, `process.x` and so on: (line, object, attribute), for objects in LETTER_OBJECT_KEYS.
    attributes: list[tuple[int, str, str]] = field(default_factory=list)
    # Each `label` filter: (line, the field it names); None when it names no field.
    label_fields: list[tuple[int, str | None]] = field(default_factory=list)


def _first_lines(tree: nodes.Template, names: Iterable[str]) -> dict[str, int]:
    """Return the line where each of `names` is first read in `tree`."""
    wanted = set(names)
    lines: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name in wanted:
            lines[node.name] = min(lines.get(node.name, node.lineno), node.lineno)
    return {name: lines.get(name, 1) for name in wanted}


def _local_names(tree: nodes.Template) -> set[str]:
    """Return the names a template assigns itself: loop variables, {% set %}, macro arguments and imports."""
    names = {node.name for node in tree.find_all(nodes.Name) if node.ctx in ("store", "param")}
    names.update(node.target for node in tree.find_all(nodes.Import))
    for from_import in tree.find_all(nodes.FromImport):
        names.update(item[1] if isinstance(item, tuple) else item for item in from_import.names)
    return names


def _object_attributes(tree: nodes.Template) -> list[tuple[int, str, str]]:
    """Return (line, object, attribute) for each lookup in an object of LETTER_OBJECT_KEYS.

    Objects that the template assigns itself are left out, and so are attributes starting
    with `_`, which are reported as private (SF311).
    """
    local = _local_names(tree)
    return [
        (line, target.name, name)
        for target, name, line in named_lookups(tree)
        if isinstance(target, nodes.Name)
        and target.name in LETTER_OBJECT_KEYS
        and target.name not in local
        and not name.startswith("_")
    ]


def _label_fields(tree: nodes.Template) -> list[tuple[int, str | None]]:
    """Return (line, field) for each `label` filter; a field name that the template computes is left out."""
    found: list[tuple[int, str | None]] = []
    for node in tree.find_all(nodes.Filter):
        if node.name != "label":
            continue
        keyword = next((item.value for item in node.kwargs if item.key == "field"), None)
        argument = node.args[0] if node.args else keyword
        if argument is None:
            found.append((node.lineno, None))
        elif isinstance(argument, nodes.Const) and isinstance(argument.value, str):
            found.append((node.lineno, argument.value))
    return found


def _undeclared(source: str, name: str, filters: set[str], tests: set[str]) -> set[str]:
    """Return the variables a template reads without defining them.

    Jinja2 finds them by compiling, which fails on an unknown filter or test. Such names
    get no-op functions here, so that unknown variables are reported along with them.
    """
    environment = LETTER_CHECK_ENVIRONMENT
    if filters or tests:
        environment = letter_environment()
        for filter_name in filters:
            environment.filters[filter_name] = lambda value, *args, **kwargs: value
        for test_name in tests:
            environment.tests[test_name] = lambda value, *args, **kwargs: True
    return set(meta.find_undeclared_variables(environment.parse(source, name=name))) - set(environment.globals)


@functools.lru_cache(maxsize=2048)
def _analyse_template(name: str, source: str) -> _TemplateFacts | None:
    """Analyse a template that the resolver read; None when it does not parse (already reported).

    The result depends on the name and the source only, and nothing changes it afterwards,
    so the skeleton's templates, which every process of the skeleton carries, are analysed
    once per run instead of once per process.
    """
    environment = LETTER_CHECK_ENVIRONMENT
    try:
        tree = environment.parse(source, name=name)
    except TemplateError:
        return None
    problems: list[tuple[int, Text, Text]] = []

    unknown_filters: set[str] = set()
    for node in tree.find_all(nodes.Filter):
        if node.name not in environment.filters:
            unknown_filters.add(node.name)
            detail = Text(f"filteret '{node.name}' findes ikke", f"the filter '{node.name}' does not exist")
            problems.append((node.lineno, detail, _UNKNOWN_FILTER_FIX))
    unknown_tests: set[str] = set()
    for test in tree.find_all(nodes.Test):
        if test.name not in environment.tests:
            unknown_tests.add(test.name)
            detail = Text(f"testen '{test.name}' findes ikke", f"the test '{test.name}' does not exist")
            problems.append((test.lineno, detail, _UNKNOWN_FILTER_FIX))
    for attribute, line in private_accesses(tree):
        problems.append((line, _private_detail(attribute), _PRIVATE_FIX))

    variables: set[str] = set()
    try:
        if not unknown_filters and not unknown_tests:
            # Compiling finds what parsing does not; the letter renderer compiles the same way.
            environment.compile(source, name=name)
        variables = _undeclared(source, name, unknown_filters, unknown_tests)
    except TemplateError as error:
        message = error.message or type(error).__name__
        problems.append((getattr(error, "lineno", None) or 1, Text(f"Jinja2 melder: {message}", message), _COMPILE_FIX))

    extends = next(
        (
            (node.template.value, node.lineno)
            for node in tree.find_all(nodes.Extends)
            if isinstance(node.template, nodes.Const) and isinstance(node.template.value, str)
        ),
        None,
    )
    blocks: dict[str, int] = {}
    for block in tree.find_all(nodes.Block):
        blocks.setdefault(block.name, block.lineno)
    referenced = frozenset(reference for reference, _, _ in template_references(tree) if reference is not None)
    return _TemplateFacts(
        extends=extends,
        referenced=referenced,
        blocks=blocks,
        variables=_first_lines(tree, variables),
        problems=sorted(problems, key=lambda problem: problem[0]),
        attributes=_object_attributes(tree),
        label_fields=_label_fields(tree),
    )


_TITLE_CHECKS = SandboxedEnvironment()


class _Checker:
    def __init__(self, process: ResolvedProcess, sources: SourceMap) -> None:
        self.process = process
        self.sources = sources
        self.problems: list[Problem] = []
        # Every step with its source key, in process order; a repeated id (SF301) keeps its own key.
        self.placed_steps: list[tuple[ResolvedStep, SourceKey]] = []
        occurrences: dict[str, int] = {}
        for phase in process.phases:
            for step in phase.steps:
                occurrences[step.id] = occurrences.get(step.id, 0) + 1
                self.placed_steps.append((step, step_key(step.id, occurrences[step.id])))
        self.step_order = list(dict.fromkeys(step.id for step, _ in self.placed_steps))
        self.step_ids = set(self.step_order)
        self.steps_by_id: dict[str, ResolvedStep] = {}
        for step, _ in self.placed_steps:
            self.steps_by_id.setdefault(step.id, step)
        # Steps that a process placed at an unknown anchor: their anchor is reported already (SF302).
        self.unplaced_ids = sources.unplaced_ids()

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
        self.check_removed_steps()
        self.check_letters()
        self.check_deadlines()
        self.check_roles()
        self.check_party()
        self.check_duplicates()
        self.check_case_title()
        self.check_escalation()
        return self.problems

    # Fields ------------------------------------------------------------------------------

    def check_fields(self) -> None:
        for field_id, field_def in self.process.fields.items():
            key = ("field", field_id)
            field_type = FIELD_TYPES.get(field_def.type)
            if field_type is None:
                known = known_names(FIELD_TYPES, field_def.type)
                self.add("SF304", self.at(key, "type"), name=field_def.type, known=known)
                continue
            for option in OPTION_NAMES:
                value = getattr(field_def, option)
                if value not in (None, False) and option not in field_type.allowed_options:
                    self.add(
                        "SF316",
                        self.at(key, option, use_key=True),
                        name=field_id,
                        type=field_def.type,
                        detail=Text(
                            f"'{option}' gælder ikke for denne type", f"'{option}' does not apply to this type"
                        ),
                    )
            for detail in field_type.check_definition(field_def):
                self.add(
                    "SF316", self.at(key, "type"), name=field_id, type=field_def.type, detail=_field_detail(detail)
                )
            if field_def.required and field_def.source != "application":
                self.add(
                    "SF316",
                    self.at_override(("field_required", field_id), key, "required", use_key=True),
                    name=field_id,
                    type=field_def.type,
                    detail=Text(
                        "'required' gælder kun felter med source: application; kræv sagsbehandlerfelter i "
                        "opgavens formular",
                        "'required' applies only to fields with source: application; "
                        "require caseworker fields in the task's form",
                    ),
                )

    # Phases and transitions ---------------------------------------------------------------

    def check_phases(self) -> None:
        phases = self.process.phases
        if not phases:
            self.add("SF201", self.sources.location(("process",)), key="phases")
            return
        seen: dict[str, Location] = {}
        for index, phase in enumerate(phases):
            location = self.at(phase_key(index), "id")
            if phase.id in seen:
                self.add("SF301", location, kind=Text("Fase", "Phase"), name=phase.id, first=seen[phase.id])
            seen.setdefault(phase.id, location)

        phase_ids = {phase.id for phase in phases}
        for phase_index, phase in enumerate(phases):
            key = phase_key(phase_index)
            if phase.final and phase.next:
                self.add(
                    "SF320",
                    self.at(key, "next", use_key=True),
                    name=phase.id,
                    detail=Text(
                        "en slutfase kan ikke have overgange ('next')", "a final phase cannot have transitions ('next')"
                    ),
                )
            if not phase.final and not phase.next:
                self.add(
                    "SF320",
                    self.at(key, "id"),
                    name=phase.id,
                    detail=Text(
                        "en fase, der ikke er en slutfase, skal have mindst én overgang i 'next'",
                        "a phase that is not final needs at least one transition in 'next'",
                    ),
                )
            if phase.final and any(step.required and step.kind not in AUTOMATIC_KINDS for step in phase.steps):
                self.add(
                    "SF320",
                    self.at(key, "steps", use_key=True),
                    name=phase.id,
                    detail=Text(
                        "en slutfase må kun have automatiske trin", "a final phase may only have automatic steps"
                    ),
                )
            for index, transition in enumerate(phase.next):
                transition_at = transition_key(phase_index, index)
                if transition.to not in phase_ids:
                    known = known_names(phase_ids, transition.to)
                    self.add("SF305", self.at(transition_at, "to"), name=transition.to, known=known)
                if transition.when is not None:
                    self.check_guard(transition.when, self.at(transition_at, "when"))
        if phases[0].final:
            self.add(
                "SF320",
                self.at(phase_key(0), "id"),
                name=phases[0].id,
                detail=Text(
                    "sager starter i den første fase, så den kan ikke være en slutfase",
                    "the first phase is where cases start and cannot be final",
                ),
            )

    # Guards -------------------------------------------------------------------------------

    def guard_names(self) -> set[str]:
        return set(self.process.fields) | set(GUARD_NAMES)

    def check_guard(self, expression: str, location: Location) -> None:
        try:
            guard = compile_guard(expression)
            tree = parse_guard(expression)
        except ExpressionError as error:
            self.add("SF307", location, expression=expression, detail=error.detail)
            return
        for attribute, _ in private_accesses(tree):
            self.add("SF307", location, expression=expression, detail=_private_detail(attribute))
        for name in sorted(guard.names - self.guard_names()):
            self.add("SF306", location, name=name, known=known_names(self.guard_names(), name))
        for step_id in sorted(outcome_steps(tree)):
            # A removed step is reported at its `remove:` (SF331), an unplaced one at its anchor (SF302),
            # and a name starting with `_` above (SF307).
            reported_elsewhere = (
                step_id in self.sources.removed_steps or step_id in self.unplaced_ids or step_id.startswith("_")
            )
            if step_id in self.step_ids or reported_elsewhere:
                continue
            self.add("SF302", location, name=step_id, known=known_names(self.step_order, step_id, sort=False))
        self.check_comparisons(expression, tree, location)

    def check_comparisons(self, expression: str, tree: nodes.Expr, location: Location) -> None:
        """Warn about comparisons with a constant that a field or a step's outcome can never equal."""
        reported: set[tuple[Subject, str]] = set()
        for subject, value in _compared_constants(tree, self.process.fields):
            literal = _jinja_literal(value)
            kind, name = subject
            if kind == "field":
                mismatch = _mismatch(name, self.process.fields[name], value)
                described = Text(f"feltet '{name}'", f"the field '{name}'")
            else:
                step = self.steps_by_id.get(name)
                mismatch = _outcome_mismatch(step, value) if step is not None else None
                described = Text(f"outcome.{name}", f"outcome.{name}")
            if mismatch is None or (subject, literal) in reported:
                continue
            reported.add((subject, literal))
            detail, fix = mismatch
            self.add("SF332", location, expression=expression, subject=described, value=literal, detail=detail, fix=fix)

    # Steps --------------------------------------------------------------------------------

    def check_steps(self) -> None:
        seen: dict[str, Location] = {}
        earlier: set[str] = set()
        for step, key in self.placed_steps:
            location = self.at(key, "id")
            if step.id in seen:
                self.add("SF301", location, kind=Text("Trin", "Step"), name=step.id, first=seen[step.id])
            seen.setdefault(step.id, location)
            self.check_step(step, key, earlier)
            earlier.add(step.id)
        # A step whose anchor does not exist has no place, so the order of an approval is not checked.
        for step, key in self.sources.unplaced_steps:
            self.check_step(step, key, None)

    def _misplaced(self, step: ResolvedStep, key: SourceKey, names: Iterable[str]) -> None:
        for name in names:
            value = getattr(step, name)
            if value not in (None, [], {}):
                self.add(
                    "SF315",
                    self.at(key, name, use_key=True),
                    name=step.id,
                    kind=step.kind,
                    detail=Text(
                        f"'{name}' gælder ikke for et trin af typen '{step.kind}'",
                        f"'{name}' does not apply to a step of kind '{step.kind}'",
                    ),
                )

    def _require(self, step: ResolvedStep, key: SourceKey, name: str) -> bool:
        if getattr(step, name) in (None, [], {}):
            self.add(
                "SF315",
                self.at(key, "kind"),
                name=step.id,
                kind=step.kind,
                detail=Text(
                    f"et trin af typen '{step.kind}' skal have '{name}'",
                    f"a step of kind '{step.kind}' needs '{name}'",
                ),
            )
            return False
        return True

    def check_conditions(self, step: ResolvedStep, key: SourceKey) -> None:
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

    def check_step(self, step: ResolvedStep, key: SourceKey, earlier: set[str] | None) -> None:
        """Check one step; `earlier` contains the ids of the steps before it, or is None when it has no place."""
        self.check_conditions(step, key)
        if step.deadline is not None:
            self.check_deadline(step.deadline, self.at_override(("step_deadline", step.id), key, "deadline"))

        if step.kind == "task":
            self._misplaced(step, key, ("action", "params", "letter", "approves", "eyes", "until"))
            if self._require(step, key, "role"):
                self.check_role(step.role, self.at(key, "role"))
            self.check_form(step, key)
        elif step.kind == "action":
            self._misplaced(step, key, ("form", "letter", "approves", "eyes", "role", "until"))
            if self._require(step, key, "action"):
                self.check_action(step, key)
        elif step.kind == "letter":
            self._misplaced(step, key, ("form", "action", "params", "approves", "eyes", "role", "until"))
            self.check_letter_reference(step, key)
        elif step.kind == "approval":
            self._misplaced(step, key, ("form", "action", "params", "letter", "until"))
            if self._require(step, key, "role"):
                self.check_role(step.role, self.at(key, "role"))
            self._require(step, key, "eyes")
            if self._require(step, key, "approves"):
                self.check_approval_target(step, key, earlier)
        else:
            self.check_waiting_step(step, key)

    def check_letter_reference(self, step: ResolvedStep, key: SourceKey) -> None:
        if self._require(step, key, "letter") and step.letter not in self.process.letters:
            known = known_names(self.process.letters, step.letter)
            self.add("SF310", self.at(key, "letter"), name=step.letter, known=known)

    def check_waiting_step(self, step: ResolvedStep, key: SourceKey) -> None:
        """Check hearing, party hearing, timer, intake and report steps."""
        if step.kind in ("hearing", "party_hearing"):
            # A caseworker opens the hearing: the letter goes to each party, who replies by the deadline.
            self._misplaced(step, key, ("form", "action", "params", "approves", "eyes", "until"))
            if self._require(step, key, "role"):
                self.check_role(step.role, self.at(key, "role"))
            self.check_letter_reference(step, key)
            self._require(step, key, "deadline")
        elif step.kind == "timer":
            self._misplaced(step, key, ("form", "action", "params", "letter", "approves", "eyes", "role"))
            self.check_timer(step, key)
        elif step.kind == "intake":
            self._misplaced(step, key, ("action", "letter", "approves", "eyes", "role", "until", "deadline"))
            self.check_form(step, key)
            self.check_intake_params(step, key)
        elif step.kind == "report":
            # The party fills the form through the link in the request letter, by the deadline.
            self._misplaced(step, key, ("action", "params", "letter", "approves", "eyes", "role", "until"))
            self._require(step, key, "form")
            self._require(step, key, "deadline")
            self.check_form(step, key)
            if not step.required:
                self.add(
                    "SF315",
                    self.at(key, "required", use_key=True),
                    name=step.id,
                    kind=step.kind,
                    detail=Text(
                        "et indberetningstrin skal være påkrævet, for ellers forlader sagen fasen, før "
                        "indberetningen kommer",
                        "a report step must be required, because otherwise the case leaves the phase before the "
                        "report arrives",
                    ),
                )

    def check_timer(self, step: ResolvedStep, key: SourceKey) -> None:
        if (step.deadline is None) == (step.until is None):
            self.add(
                "SF315",
                self.at(key, "kind"),
                name=step.id,
                kind=step.kind,
                detail=Text(
                    "en timer skal have enten 'deadline' eller 'until' (et datofelt), ikke begge",
                    "a timer needs either 'deadline' or 'until' (a date field), not both",
                ),
            )
        if step.until is not None:
            field = self.process.fields.get(step.until)
            if field is None:
                self.add(
                    "SF306", self.at(key, "until"), name=step.until, known=known_names(self.process.fields, step.until)
                )
            elif field.type != "date":
                self.add(
                    "SF315",
                    self.at(key, "until"),
                    name=step.id,
                    kind=step.kind,
                    detail=Text(
                        f"'until' skal pege på et datofelt, men '{step.until}' har typen '{field.type}'",
                        f"'until' must name a date field, but '{step.until}' has type '{field.type}'",
                    ),
                )

    def check_intake_params(self, step: ResolvedStep, key: SourceKey) -> None:
        unknown = sorted(set(step.params) - {"fee_field"})
        for name in unknown:
            self.add(
                "SF315",
                self.at(key, "params", name, use_key=True),
                name=step.id,
                kind=step.kind,
                detail=Text(
                    f"ukendt parameter '{name}'; et modtagelsestrin kender kun 'fee_field'",
                    f"unknown parameter '{name}'; an intake step only knows 'fee_field'",
                ),
            )
        fee_field = step.params.get("fee_field")
        if fee_field is None:
            return
        field = self.process.fields.get(str(fee_field))
        if field is None or field.type != "money" or field.source != "system":
            self.add(
                "SF315",
                self.at(key, "params", "fee_field"),
                name=step.id,
                kind=step.kind,
                detail=Text(
                    f"'fee_field' skal pege på et beløbsfelt (money) med source: system, ikke '{fee_field}'",
                    f"'fee_field' must name a money field with source: system, not '{fee_field}'",
                ),
            )

    def check_form(self, step: ResolvedStep, key: SourceKey) -> None:
        fields = self.process.fields
        for index, entry in enumerate(step.form):
            location = self.at(key, "form", index, "field")
            field_def = fields.get(entry.field)
            if field_def is None:
                self.add("SF306", location, name=entry.field, known=known_names(fields, entry.field))
                continue
            if field_def.source == "system":
                self.add(
                    "SF315",
                    location,
                    name=step.id,
                    kind=step.kind,
                    detail=Text(
                        f"feltet '{entry.field}' udfyldes af en handling (source: system), ikke i en formular",
                        f"the field '{entry.field}' is filled by an action (source: system), not in a form",
                    ),
                )
            if entry.required_if is not None:
                self.check_guard(entry.required_if, self.at(key, "form", index, "required_if"))

    def check_action(self, step: ResolvedStep, key: SourceKey) -> None:
        action = ACTIONS.get(step.action or "")
        if action is None:
            known = known_names(ACTIONS, step.action)
            self.add("SF308", self.at(key, "action"), name=step.action, known=known)
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
                    detail=_parameter_detail(".".join(str(part) for part in where) or "params", item),
                )
            return
        for use in action.uses(params):
            location = self.at(key, "params", use.param)
            field_def = self.process.fields.get(use.field)
            if field_def is None:
                self.add("SF306", location, name=use.field, known=known_names(self.process.fields, use.field))
                continue
            if field_def.type not in use.types:
                types_da = " eller ".join(sorted(use.types))
                types_en = " or ".join(sorted(use.types))
                self.add(
                    "SF309",
                    location,
                    action=action.name,
                    detail=Text(
                        f"'{use.param}' skal navngive et felt af typen {types_da}, men '{use.field}' har typen "
                        f"'{field_def.type}'",
                        f"'{use.param}' must name a field of type {types_en}, but '{use.field}' has type "
                        f"'{field_def.type}'",
                    ),
                )
            if use.writes and field_def.source != "system":
                self.add(
                    "SF309",
                    location,
                    action=action.name,
                    detail=Text(
                        f"handlingen skriver i '{use.field}', så feltet skal have source: system",
                        f"the action writes '{use.field}', so that field needs source: system",
                    ),
                )
        for path, expression in action.expressions(params):
            self.check_guard(expression, self.at(key, "params", *path))

    def check_approval_target(self, step: ResolvedStep, key: SourceKey, earlier: set[str] | None) -> None:
        location = self.at(key, "approves")
        target = step.approves or ""
        if target not in self.step_ids:
            # A removed target is reported at the `remove:` line (SF331), an unplaced one at its anchor (SF302).
            if target not in self.sources.removed_steps and target not in self.unplaced_ids:
                self.add("SF302", location, name=target, known=known_names(self.step_ids, target))
            return
        target_step = self.steps_by_id[target]
        if target_step.kind != "task":
            self.add(
                "SF319",
                location,
                name=step.id,
                target=target,
                detail=Text(
                    f"kun en opgave (task) kan godkendes, og '{target}' har typen '{target_step.kind}'",
                    f"only a task can be approved, and '{target}' is of kind '{target_step.kind}'",
                ),
            )
        if earlier is not None and target not in earlier:
            self.add(
                "SF319",
                location,
                name=step.id,
                target=target,
                detail=Text(
                    "det godkendte trin skal komme før godkendelsestrinnet",
                    "the approved step must come before the approval step",
                ),
            )

    # Removed steps ------------------------------------------------------------------------

    def _guards(self) -> Iterator[tuple[str, Text]]:
        """Yield every guard of the process with a description of where it is."""
        for check in self.process.application_checks:
            yield check.rule, Text("en regel i application_checks", "a rule in application_checks")
        for phase in self.process.phases:
            for step in phase.steps:
                if step.when is not None:
                    yield (
                        step.when,
                        Text(f"betingelsen på trinnet '{step.id}'", f"the condition of the step '{step.id}'"),
                    )
                for check in step.checks:
                    yield (
                        check.rule,
                        Text(f"en regel (checks) på trinnet '{step.id}'", f"a rule (checks) of the step '{step.id}'"),
                    )
                for entry in step.form:
                    if entry.required_if is not None:
                        yield (
                            entry.required_if,
                            Text(
                                f"required_if for feltet '{entry.field}' på trinnet '{step.id}'",
                                f"required_if of the field '{entry.field}' in the step '{step.id}'",
                            ),
                        )
                for expression in _action_expressions(step):
                    yield (
                        expression,
                        Text(
                            f"et udtryk i params på trinnet '{step.id}'",
                            f"an expression in the params of the step '{step.id}'",
                        ),
                    )
            for transition in phase.next:
                if transition.when is not None:
                    yield (
                        transition.when,
                        Text(
                            f"overgangen fra fasen '{phase.id}' til '{transition.to}'",
                            f"the transition from the phase '{phase.id}' to '{transition.to}'",
                        ),
                    )

    def _step_users(self, step_id: str) -> list[Text]:
        """Describe every approval and guard that still refers to the step `step_id`."""
        users = [
            Text(f"godkendelsestrinnet '{step.id}' (approves)", f"the approval step '{step.id}' (approves)")
            for phase in self.process.phases
            for step in phase.steps
            if step.kind == "approval" and step.approves == step_id
        ]
        for rule in self.process.escalation:
            if rule.overdue == step_id:
                users.append(Text("en eskaleringsregel (escalation)", "an escalation rule (escalation)"))
        for expression, where in self._guards():
            try:
                steps = outcome_steps(parse_guard(expression))
            except ExpressionError:
                continue  # reported as SF307
            if step_id in steps:
                users.append(Text(f"{where.da} (outcome.{step_id})", f"{where.en} (outcome.{step_id})"))
        return users

    def check_removed_steps(self) -> None:
        for step_id, location in self.sources.removed_steps.items():
            if step_id in self.step_ids:
                continue  # a later change put a step with that id back
            users = self._step_users(step_id)
            if users:
                listed = Text(", ".join(user.da for user in users), ", ".join(user.en for user in users))
                self.add("SF331", location, name=step_id, users=listed)

    # Roles, deadlines ---------------------------------------------------------------------

    def check_role(self, role: str | None, location: Location) -> None:
        if role is not None and role not in self.process.roles:
            self.add("SF314", location, name=role, known=known_names(self.process.roles, role))

    def check_roles(self) -> None:
        for role in self.process.intake_roles:
            self.check_role(role, self.sources.location(("process",)))

    def check_duplicates(self) -> None:
        rule = self.process.duplicates
        if rule is None:
            return
        for index, name in enumerate(rule.key):
            field = self.process.fields.get(name)
            location = self.at(("duplicates",), "key", index)
            if field is None:
                self.add("SF306", location, name=name, known=known_names(self.process.fields, name))
            elif field.source != "application":
                self.add(
                    "SF316",
                    location,
                    name=name,
                    type=field.type,
                    detail=Text(
                        "en dubletnøgle må kun bestå af ansøgningens felter (source: application)",
                        "a duplicate key may only consist of the application's fields (source: application)",
                    ),
                )

    def check_party(self) -> None:
        party = self.process.party
        for key, name, types in (
            ("name", party.name, {"text"}),
            ("cvr", party.cvr, {"cvr"}),
            ("cpr", party.cpr, {"cpr"}),
            ("address", party.address, {"text"}),
            ("postcode", party.postcode, {"postcode"}),
            ("city", party.city, {"text"}),
        ):
            if name is None:
                continue
            field = self.process.fields.get(name)
            location = self.at(("party",), key)
            if field is None:
                self.add("SF306", location, name=name, known=known_names(self.process.fields, name))
            elif field.type not in types:
                self.add(
                    "SF316",
                    location,
                    name=name,
                    type=field.type,
                    detail=Text(
                        f"'party.{key}' skal pege på et felt af typen {', '.join(sorted(types))}",
                        f"'party.{key}' must name a field of type {', '.join(sorted(types))}",
                    ),
                )

    def check_deadline(self, deadline: Deadline, location: Location) -> None:
        units = {unit.value for unit in DeadlineUnit}
        rules = {rule.value for rule in DayRule}
        if deadline.unit not in units:
            listed = ", ".join(sorted(units))
            self.add(
                "SF317",
                location,
                detail=Text(
                    f"enheden '{deadline.unit}' er ukendt; brug en af {listed}",
                    f"the unit '{deadline.unit}' is unknown; use one of {listed}",
                ),
            )
        if deadline.rule not in rules:
            listed = ", ".join(sorted(rules))
            self.add(
                "SF317",
                location,
                detail=Text(
                    f"reglen '{deadline.rule}' er ukendt; brug en af {listed}",
                    f"the rule '{deadline.rule}' is unknown; use one of {listed}",
                ),
            )

    def check_deadlines(self) -> None:
        if self.process.processing_deadline is not None:
            self.check_deadline(self.process.processing_deadline, self.at(("processing_deadline",)))
        if self.process.appeal is not None:
            self.check_deadline(self.process.appeal.deadline, self.at(("appeal",), "deadline"))

    # Escalation -----------------------------------------------------------------------------

    def check_escalation(self) -> None:
        for index, rule in enumerate(self.process.escalation):
            self.check_escalation_target(rule, self.at(("escalation",), index, "overdue"))
            self.check_escalation_recipient(rule, self.at(("escalation",), index, "to"))

    def check_escalation_target(self, rule: EscalationRule, location: Location) -> None:
        """Check that the rule watches the case or a step that can become overdue."""
        if rule.overdue == "case":
            if self.process.processing_deadline is None:
                self.add(
                    "SF202",
                    location,
                    key="overdue",
                    detail=Text(
                        "processen har ingen sagsbehandlingsfrist (processing_deadline), så en sag bliver aldrig "
                        "overskredet",
                        "the process has no processing deadline (processing_deadline), so a case is never overdue",
                    ),
                )
            return
        step = self.steps_by_id.get(rule.overdue)
        if step is None:
            # A removed step is reported at its `remove:` (SF331), an unplaced one at its anchor (SF302).
            if rule.overdue not in self.sources.removed_steps and rule.overdue not in self.unplaced_ids:
                known = known_names(["case", *self.step_order], rule.overdue, sort=False)
                self.add("SF302", location, name=rule.overdue, known=known)
            return
        if step.deadline is None:
            self.add(
                "SF202",
                location,
                key="overdue",
                detail=Text(
                    f"trinnet '{step.id}' har ingen frist (deadline), så det bliver aldrig overskredet",
                    f"the step '{step.id}' has no deadline, so it is never overdue",
                ),
            )

    def check_escalation_recipient(self, rule: EscalationRule, location: Location) -> None:
        """Check that `to` is a role of the process (not for reassign) or a user name."""
        roles = self.process.roles
        if rule.to in roles:
            if rule.action == "reassign":
                self.add(
                    "SF202",
                    location,
                    key="to",
                    detail=Text(
                        f"'{rule.to}' er en rolle, men reassign kræver et brugernavn, fordi en sag eller et trin "
                        "kun har én ansvarlig",
                        f"'{rule.to}' is a role, but reassign needs a user name, because a case or a step has "
                        "one assignee",
                    ),
                )
            return
        if not USER_NAME_PATTERN.match(rule.to):
            self.add(
                "SF202",
                location,
                key="to",
                detail=Text(
                    f"'{rule.to}' er hverken en af processens roller eller et gyldigt brugernavn (bogstaver, cifre "
                    "og . _ @ -)",
                    f"'{rule.to}' is neither a role of the process nor a valid user name (letters, digits and . _ @ -)",
                ),
            )
            return
        # A user name that is close to a role name is most likely a misspelt role.
        if closest_name(rule.to, roles) is not None:
            self.add("SF314", location, name=rule.to, known=known_names(roles, rule.to))

    # The case title -------------------------------------------------------------------------

    def check_case_title(self) -> None:
        title = self.process.case_title
        if title is None:
            return
        location = self.at(("case_title",))
        try:
            title_template(title)
        except TemplateError as error:
            message = (error.message or type(error).__name__).rstrip(".")
            line = getattr(error, "lineno", None)
            detail = Text(
                f"Jinja2 melder: {message}" + (f" (linje {line})" if line else ""),
                message + (f" (line {line})" if line else ""),
            )
            self.add("SF202", location, key="case_title", detail=detail)
            return
        tree = _TITLE_CHECKS.parse(title)
        for attribute, _ in private_accesses(tree):
            self.add("SF202", location, key="case_title", detail=_private_detail(attribute))
        # The title is rendered with the case's fields only (see `CompiledProcess.guard_context`).
        fields = set(self.process.fields)
        undeclared = set(meta.find_undeclared_variables(tree)) - set(_TITLE_CHECKS.globals)
        for name in sorted(undeclared - fields):
            self.add(
                "SF312",
                location,
                template=Text("Sagstitlen (case_title)", "The case title (case_title)"),
                name=name,
                known=known_names(fields, name),
            )

    # Letters ------------------------------------------------------------------------------

    def check_letters(self) -> None:
        allowed = set(LETTER_NAMES) | set(self.process.fields)
        facts: dict[str, _TemplateFacts] = {}
        for name, source in self.process.templates.items():
            analysed = _analyse_template(name, source)
            if analysed is not None:
                facts[name] = analysed

        # A template shared by several letters is reported once, naming the first letter that uses it.
        reported: set[str] = set()
        for letter_id, letter in self.process.letters.items():
            for language, template in letter.templates.items():
                for used in self._used_templates(template, facts):
                    if used not in reported:
                        reported.add(used)
                        self.check_template(used, facts[used], letter_id, allowed)
                if letter.locked:
                    self.check_locked_letter(letter_id, language, template, facts)
        self.check_letters_sent()

    def check_letters_sent(self) -> None:
        """Warn about a letter that a process declares and no step sends."""
        steps = [step for step, _ in (*self.placed_steps, *self.sources.unplaced_steps)]
        sent = {step.letter for step in steps if step.kind == "letter" or step.kind in HEARING_KINDS}
        for letter_id, letter in self.process.letters.items():
            if letter.origin == "process" and letter_id not in sent:
                self.add("SF333", self.at(("letter", letter_id), use_key=True), name=letter_id)

    def check_template(self, name: str, facts: _TemplateFacts, letter_id: str, allowed: set[str]) -> None:
        for line, detail, fix in facts.problems:
            self.add("SF311", Location(name, line), template=name, letter=letter_id, detail=detail, fix=fix)
        subject = Text(
            f"Brevskabelonen '{name}' (brevet '{letter_id}')", f"The letter template '{name}' (letter '{letter_id}')"
        )
        for variable in sorted(set(facts.variables) - allowed):
            self.add(
                "SF312",
                Location(name, facts.variables[variable]),
                template=subject,
                name=variable,
                known=known_names(allowed, variable),
            )
        for line, object_name, attribute in facts.attributes:
            keys = LETTER_OBJECT_KEYS[object_name]
            if attribute in keys:
                continue
            close = closest_name(attribute, keys)
            self.add(
                "SF312",
                Location(name, line),
                template=subject,
                name=f"{object_name}.{attribute}",
                known=listed_names(
                    [f"{object_name}.{key}" for key in keys], f"{object_name}.{close}" if close else None
                ),
            )
        self.check_label_filters(name, facts, letter_id)

    def check_label_filters(self, name: str, facts: _TemplateFacts, letter_id: str) -> None:
        """Check that each `label('field')` names an enum field, whose option labels the filter shows."""
        fields = self.process.fields
        enum_fields = [field_id for field_id, definition in fields.items() if definition.type == "enum"]
        for line, field_id in facts.label_fields:
            if field_id in enum_fields:
                continue
            if field_id is None:
                detail = Text(
                    "filteret label mangler navnet på et enum-felt", "the filter label lacks the name of an enum field"
                )
            elif field_id in fields:
                field_type = fields[field_id].type
                detail = Text(
                    f"filteret label nævner feltet '{field_id}' af typen {field_type}, men label viser kun "
                    "etiketterne for et enum-felts værdier",
                    f"the filter label names the field '{field_id}' of type {field_type}, but label shows only "
                    "the labels of an enum field's options",
                )
            else:
                detail = Text(
                    f"filteret label nævner feltet '{field_id}', som ikke findes",
                    f"the filter label names the field '{field_id}', which does not exist",
                )
            known = known_names(enum_fields, field_id)
            fix = Text(f"Nævn et enum-felt i processen: {known.da}.", f"Name an enum field of the process: {known.en}.")
            self.add("SF311", Location(name, line), template=name, letter=letter_id, detail=detail, fix=fix)

    @staticmethod
    def _used_templates(name: str, facts: dict[str, _TemplateFacts]) -> list[str]:
        """Return `name` and every template it extends or includes, directly or through others."""
        # NOTE: an included template is checked on its own, so a loop variable of the template
        # that includes it is reported as unknown.
        found: list[str] = []
        pending = [name]
        while pending:
            current = pending.pop(0)
            if current in found or current not in facts:
                continue
            found.append(current)
            pending.extend(sorted(facts[current].referenced))
        return found

    @staticmethod
    def _chain(name: str, facts: dict[str, _TemplateFacts]) -> list[str]:
        chain: list[str] = []
        current: str | None = name
        while current is not None and current in facts and current not in chain:
            chain.append(current)
            extends = facts[current].extends
            current = extends[0] if extends else None
        return chain

    def check_locked_letter(
        self, letter_id: str, language: str, template: str, facts: dict[str, _TemplateFacts]
    ) -> None:
        letter = self.process.letters[letter_id]
        base = letter.base_templates.get(language) or letter.base_templates.get("da")  # type: ignore[call-overload]
        if base is None:
            return
        base_facts = facts.get(base)
        if base_facts is not None:
            missing = [
                block for block in (*letter.locked_blocks, *letter.required_blocks) if block not in base_facts.blocks
            ]
            if missing:
                listed = ", ".join(missing)
                self.add(
                    "SF313",
                    Location(base),
                    name=letter_id,
                    base=base,
                    detail=Text(
                        f"skelettets skabelon mangler blokkene {listed}",
                        f"the skeleton template lacks the blocks {listed}",
                    ),
                )
        if template == base:
            return
        template_facts = facts.get(template)
        if template_facts is None:
            return
        if base not in self._chain(template, facts):
            line = template_facts.extends[1] if template_facts.extends else 1
            self.add(
                "SF313",
                Location(template, line),
                name=letter_id,
                base=base,
                detail=Text(
                    "skabelonen skal udvide (extends) skelettets skabelon",
                    "the template must extend the skeleton's template",
                ),
            )
            return
        for block in sorted(set(letter.locked_blocks) & set(template_facts.blocks)):
            self.add(
                "SF313",
                Location(template, template_facts.blocks[block]),
                name=letter_id,
                base=base,
                detail=Text(
                    f"skabelonen overskriver den låste blok '{block}'",
                    f"the template overrides the locked block '{block}'",
                ),
            )


def _action_expressions(step: ResolvedStep) -> list[str]:
    """Return the guard expressions among an action step's parameters; none when they are invalid (SF309)."""
    action = ACTIONS.get(step.action or "") if step.kind == "action" else None
    if action is None:
        return []
    try:
        params = action.params.model_validate(step.params)
    except ValidationError:
        return []
    return [expression for _, expression in action.expressions(params)]


def _parameter_detail(path: str, error: Any) -> Text:
    """Describe one pydantic error in an action's `params`, naming the parameter."""
    if error["type"] == "missing":
        return Text(f"parameteren '{path}' mangler", f"the parameter '{path}' is missing")
    if error["type"] == "extra_forbidden":
        return Text(f"handlingen har ingen parameter '{path}'", f"the action has no parameter '{path}'")
    detail = pydantic_detail(error)
    return Text(f"'{path}': {detail.da}", f"'{path}': {detail.en}")


def validate_resolved(process: ResolvedProcess, sources: SourceMap) -> list[Problem]:
    """Run every semantic check on a resolved process and return all problems found."""
    return _Checker(process, sources).run()
