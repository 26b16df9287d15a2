"""Compile a resolved process version into what the runtime executes.

One `transitions.Machine` is built per process version (never per case), with phases as
states and one `advance` trigger whose transitions keep the YAML order, so the first
transition whose guard holds wins. Guards, step conditions and letter templates are
compiled here once, so a command only evaluates them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from jinja2 import Template
from transitions import EventData, Machine

from engine.definitions.expressions import LazyGuard
from engine.definitions.fields import FIELD_TYPES, FieldType
from engine.definitions.model import (
    AUTOMATIC_KINDS,
    Label,
    ResolvedField,
    ResolvedPhase,
    ResolvedProcess,
    ResolvedStep,
)
from engine.definitions.templates import LetterRenderer, title_template
from engine.i18n import Language

ADVANCE = "advance"


def content_hash(process: ResolvedProcess) -> str:
    """Return the SHA-256 of the canonical JSON form of a resolved process."""
    canonical = json.dumps(process.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CompiledCheck:
    rule: LazyGuard
    message: Label


@dataclass(frozen=True)
class CompiledStep:
    definition: ResolvedStep
    when: LazyGuard | None
    required_if: Mapping[str, LazyGuard]
    checks: tuple[CompiledCheck, ...] = ()

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def automatic(self) -> bool:
        return self.definition.kind in AUTOMATIC_KINDS


@dataclass(frozen=True)
class CompiledPhase:
    definition: ResolvedPhase
    steps: tuple[CompiledStep, ...]

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def final(self) -> bool:
        return self.definition.final


class CaseModel:
    """The object attached to the machine while one command runs on one case.

    It carries only the phase (`state`) and the guard context; attribute names are kept
    clear of the trigger name, which `transitions` would otherwise skip silently.
    """

    def __init__(self, state: str, guard_context: Mapping[str, Any]) -> None:
        self.state = state
        self.guard_context = guard_context


def _condition(guard: LazyGuard) -> Any:
    def check(event: EventData) -> bool:
        model = cast(CaseModel, event.model)
        return guard(model.guard_context)

    check.__name__ = f"guard[{guard.source}]"
    return check


class CompiledProcess:
    """An immutable, executable process version."""

    def __init__(self, definition: ResolvedProcess, version_hash: str | None = None) -> None:
        self.definition = definition
        self.id = definition.id
        self.content_hash = version_hash or content_hash(definition)
        self.fields: dict[str, ResolvedField] = dict(definition.fields)
        self.field_types: dict[str, FieldType] = {name: FIELD_TYPES[field.type] for name, field in self.fields.items()}

        self.phases: dict[str, CompiledPhase] = {}
        self._steps: dict[str, tuple[CompiledPhase, CompiledStep]] = {}
        for phase in definition.phases:
            steps = tuple(
                CompiledStep(
                    definition=step,
                    when=LazyGuard(step.when) if step.when else None,
                    required_if={entry.field: LazyGuard(entry.required_if) for entry in step.form if entry.required_if},
                    checks=tuple(CompiledCheck(LazyGuard(check.rule), check.message) for check in step.checks),
                )
                for step in phase.steps
            )
            compiled_phase = CompiledPhase(definition=phase, steps=steps)
            self.phases[phase.id] = compiled_phase
            for step in steps:
                self._steps[step.id] = (compiled_phase, step)
        self.initial_phase = definition.phases[0].id
        self.application_checks = tuple(
            CompiledCheck(LazyGuard(check.rule), check.message) for check in definition.application_checks
        )

        self.machine = Machine(
            model=None,
            states=[phase.id for phase in definition.phases],
            initial=self.initial_phase,
            auto_transitions=False,
            # A phase without transitions (a final one) makes `advance` return None instead of raising.
            ignore_invalid_triggers=True,
            send_event=True,
        )
        for phase in definition.phases:
            for transition in phase.next:
                conditions = [_condition(LazyGuard(transition.when))] if transition.when else []
                self.machine.add_transition(ADVANCE, source=phase.id, dest=transition.to, conditions=conditions)

        labels = {
            name: {option.value: {"da": option.label.da, "en": option.label.en} for option in field.options or []}
            for name, field in self.fields.items()
            if field.options
        }
        self.renderer = LetterRenderer(definition.templates, labels)

    @functools.cached_property
    def case_title(self) -> Template | None:
        """The case title template, compiled at its first use as the guards are."""
        source = self.definition.case_title
        return title_template(source) if source else None

    def step(self, step_id: str) -> tuple[CompiledPhase, CompiledStep] | None:
        return self._steps.get(step_id)

    def title(self, language: Language) -> str:
        return self.definition.title.get(language)

    def guard_context(self, data: Mapping[str, Any], outcomes: Mapping[str, str], today: date) -> dict[str, Any]:
        """Build the names a guard sees: every field (None when empty), `outcome` and `today`."""
        context: dict[str, Any] = {name: self.field_types[name].to_context(data.get(name)) for name in self.fields}
        context["outcome"] = dict(outcomes)
        context["today"] = today
        return context

    def advance(self, phase: str, guard_context: Mapping[str, Any]) -> str | None:
        """Fire `advance` from `phase`; return the new phase, or None when no guard holds."""
        model = CaseModel(phase, guard_context)
        self.machine.add_model(model, initial=phase)
        try:
            moved = model.trigger(ADVANCE)  # type: ignore[attr-defined]
        finally:
            self.machine.remove_model(model)
        return model.state if moved else None
