"""Show a resolved process as text, or draw its phases as a Mermaid or Graphviz diagram."""

from __future__ import annotations

from engine.definitions.model import Deadline, ResolvedPhase, ResolvedProcess, ResolvedStep
from engine.definitions.templates import format_amount
from engine.i18n import Language

_ORIGIN = {"skeleton": "S", "process": "P", "changed": "S→P"}
_UNITS = {
    "da": {"calendar_days": "dage", "weeks": "uger", "months": "måneder", "working_days": "arbejdsdage"},
    "en": {"calendar_days": "days", "weeks": "weeks", "months": "months", "working_days": "working days"},
}


def _say(language: Language, da: str, en: str) -> str:
    return en if language == "en" else da


def describe_deadline(deadline: Deadline, language: Language) -> str:
    unit = _UNITS[language].get(deadline.unit, deadline.unit)
    rule = "" if deadline.rule == "standard" else f" ({deadline.rule})"
    return f"{deadline.value} {unit}{rule}"


_KINDS = {
    "da": {
        "task": "opgave",
        "action": "handling",
        "letter": "brev",
        "approval": "godkendelse",
        "hearing": "høring",
        "party_hearing": "partshøring",
        "timer": "timer",
        "intake": "modtagelse",
        "report": "indberetning",
    },
    "en": {
        "task": "task",
        "action": "action",
        "letter": "letter",
        "approval": "approval",
        "hearing": "hearing",
        "party_hearing": "party hearing",
        "timer": "timer",
        "intake": "intake",
        "report": "report",
    },
}


def _step_line(step: ResolvedStep, language: Language) -> list[str]:
    kind = _KINDS[language][step.kind]
    if step.kind == "action":
        kind = f"{kind} {step.action}"
    elif step.kind in ("letter", "hearing", "party_hearing"):
        kind = f"{kind} {step.letter}"
    elif step.kind == "approval":
        kind = f"{kind}, {step.eyes} {_say(language, 'øjne', 'eyes')}, {_say(language, 'af', 'of')} {step.approves}"
    flags = []
    if step.role:
        flags.append(f"{_say(language, 'rolle', 'role')} {step.role}")
    if not step.required:
        flags.append(_say(language, "valgfri", "optional"))
    if step.locked:
        flags.append(_say(language, "låst", "locked"))
    summary = f"{kind}; {', '.join(flags) or '-'}"
    lines = [f"      [{_ORIGIN[step.origin]}] {step.id}: {step.label.get(language)}  ({summary})"]
    if step.when:
        lines.append(f"            {_say(language, 'kun når', 'only when')}: {step.when}")
    if step.deadline:
        lines.append(f"            {_say(language, 'frist', 'deadline')}: {describe_deadline(step.deadline, language)}")
    if step.form:
        entries = []
        for entry in step.form:
            text = entry.field + ("*" if entry.required else "")
            if entry.required_if:
                text += f" ({_say(language, 'påkrævet når', 'required when')} {entry.required_if})"
            entries.append(text)
        lines.append(f"            {_say(language, 'formular', 'form')}: {', '.join(entries)}")
    return lines


def _phase_lines(index: int, phase: ResolvedPhase, language: Language) -> list[str]:
    final = f"  [{_say(language, 'slutfase', 'final')}]" if phase.final else ""
    lines = [f"  {index}. {phase.id}: {phase.label.get(language)}{final}"]
    for step in phase.steps:
        lines.extend(_step_line(step, language))
    for transition in phase.next:
        condition = f"  {_say(language, 'når', 'when')} {transition.when}" if transition.when else ""
        lines.append(f"      → {transition.to}{condition}")
    return lines


def show_process(process: ResolvedProcess, language: Language) -> str:
    """Describe a resolved process; [S] marks what the skeleton gives, [P] what a process adds or changes."""
    chain = " → ".join([*process.parents, process.skeleton]) if process.parents else process.skeleton
    lines = [
        f"{process.id}: {process.title.get(language)}",
        f"  {_say(language, 'udvider', 'extends')}: {chain}",
        f"  {_say(language, 'journalplan', 'classification')}: {process.classification}",
    ]
    for basis in process.legal_basis:
        lines.append(
            f"  {_say(language, 'hjemmel', 'legal basis')}: {basis.title.get(language)}, {basis.reference_in(language)}"
        )
    if process.processing_deadline:
        deadline = describe_deadline(process.processing_deadline, language)
        lines.append(f"  {_say(language, 'sagsbehandlingsfrist', 'processing deadline')}: {deadline}")
    if process.fee:
        lines.append(f"  {_say(language, 'gebyr', 'fee')}: {format_amount(process.fee.amount, language)}")
    heading = _say(
        language,
        "Felter ([S] skelet, [P] proces, [S→P] ændret af proces; * påkrævet):",
        "Fields ([S] skeleton, [P] process, [S→P] changed by the process; * required):",
    )
    lines.append(heading)
    for name, field in process.fields.items():
        required = "*" if field.required else ""
        label = field.label.get(language)
        lines.append(f"  [{_ORIGIN[field.origin]}] {name}{required}: {field.type}, {field.source}, {label}")
    lines.append(_say(language, "Faser:", "Phases:"))
    for index, phase in enumerate(process.phases, start=1):
        lines.extend(_phase_lines(index, phase, language))
    lines.append(_say(language, "Breve:", "Letters:"))
    for letter_id, letter in process.letters.items():
        locked = f" [{_say(language, 'låst', 'locked')}: {', '.join(letter.locked_blocks)}]" if letter.locked else ""
        templates = ", ".join(f"{lang}: {name}" for lang, name in letter.templates.items())
        lines.append(f"  [{_ORIGIN[letter.origin]}] {letter_id}: {letter.label.get(language)}{locked} ({templates})")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "'").replace(":", "：").replace("\n", " ")


def mermaid_diagram(process: ResolvedProcess, language: Language) -> str:
    lines = ["stateDiagram-v2", f"  [*] --> {process.phases[0].id}" if process.phases else "  [*] --> [*]"]
    for phase in process.phases:
        lines.append(f"  {phase.id}: {_mermaid_text(phase.label.get(language))}")
    for phase in process.phases:
        for transition in phase.next:
            label = f": {_mermaid_text(transition.when)}" if transition.when else ""
            lines.append(f"  {phase.id} --> {transition.to}{label}")
        if phase.final:
            lines.append(f"  {phase.id} --> [*]")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def dot_diagram(process: ResolvedProcess, language: Language) -> str:
    lines = [f'digraph "{_dot_text(process.id)}" {{', "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for phase in process.phases:
        shape = ", shape=doubleoctagon" if phase.final else ""
        label = _dot_text(f"{phase.label.get(language)}\n({phase.id})").replace(" (", "\\n(")
        lines.append(f'  "{phase.id}" [label="{label}"{shape}];')
    for phase in process.phases:
        for transition in phase.next:
            label = f' [label="{_dot_text(transition.when)}"]' if transition.when else ""
            lines.append(f'  "{phase.id}" -> "{transition.to}"{label};')
    lines.append("}")
    return "\n".join(lines) + "\n"
