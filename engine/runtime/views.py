"""Read models: the JSON-ready shapes of processes, cases and documents that API and CLI show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from engine.definitions.compile import CompiledProcess
from engine.i18n import Language
from engine.runtime.catalog import VersionInfo
from engine.storage.tables import Case, CaseStep, Document, DocumentKind, DocumentStatus


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def field_view(process: CompiledProcess, name: str, language: Language, required: bool) -> dict[str, Any]:
    field = process.fields[name]
    view: dict[str, Any] = {
        "field": name,
        "type": field.type,
        "label": field.label.get(language),
        "required": required,
        "schema": process.field_types[name].json_schema(field, language),
    }
    if field.help is not None:
        view["help"] = field.help.get(language)
    if field.options:
        view["options"] = [{"value": option.value, "label": option.label.get(language)} for option in field.options]
    return view


def process_summary(version: VersionInfo, process: CompiledProcess, language: Language) -> dict[str, Any]:
    definition = process.definition
    return {
        "id": definition.id,
        "version": version.version,
        "content_hash": version.content_hash,
        "skeleton": definition.skeleton,
        "title": definition.title.get(language),
        "classification": definition.classification,
        "deployed_at": _iso(version.deployed_at),
    }


def process_view(version: VersionInfo, process: CompiledProcess, language: Language) -> dict[str, Any]:
    definition = process.definition
    view = process_summary(version, process, language)
    view["description"] = definition.description.get(language) if definition.description else None
    view["legal_basis"] = [
        {"title": basis.title.get(language), "reference": basis.reference_in(language)}
        for basis in definition.legal_basis
    ]
    view["fee"] = (
        {"amount": str(definition.fee.amount), "currency": "DKK", "label": definition.fee.label.get(language)}
        if definition.fee
        else None
    )
    view["processing_deadline"] = (
        definition.processing_deadline.model_dump() if definition.processing_deadline else None
    )
    view["application_form"] = [
        field_view(process, name, language, field.required)
        for name, field in process.fields.items()
        if field.source == "application"
    ]
    view["phases"] = [
        {
            "id": phase.id,
            "label": phase.label.get(language),
            "final": phase.final,
            "steps": [
                {"id": step.id, "kind": step.kind, "label": step.label.get(language), "role": step.role}
                for step in phase.steps
            ],
        }
        for phase in definition.phases
    ]
    return view


def step_view(row: CaseStep, process: CompiledProcess, language: Language) -> dict[str, Any]:
    found = process.step(row.step_id)
    definition = found[1].definition if found else None
    view: dict[str, Any] = {
        "step": row.step_id,
        "phase": row.phase,
        "round": row.round,
        "kind": row.kind,
        "label": definition.label.get(language) if definition else _extra_row_label(row, language),
        "status": row.status,
        "required": row.required,
        "role": definition.role if definition else None,
        "outcome": row.outcome,
        "started_at": _iso(row.started_at),
        "due_at": _iso(row.due_at),
        "completed_at": _iso(row.completed_at),
        "completed_by": row.completed_by,
        "assignee": row.assignee,
    }
    if definition is not None and definition.kind == "task" and row.status == "active":
        view["form"] = [
            {
                **field_view(process, entry.field, language, entry.required),
                "required_if": entry.required_if,
            }
            for entry in definition.form
        ]
    if definition is not None and definition.kind == "approval":
        view["approves"] = definition.approves
        view["eyes"] = definition.eyes
        view["approvals"] = row.data.get("approvals", [])
    if row.kind == "intake" and row.status == "done":
        view["missing"] = list(row.data.get("missing", []))
    if row.kind == "hearing_reply":
        view["party"] = row.data.get("party")
        view["documents"] = list(row.data.get("documents", []))
    if definition is not None and definition.kind == "report":
        # The fields the party fills in through the report link, and the filed report once it has come.
        view["form"] = [field_view(process, entry.field, language, entry.required) for entry in definition.form]
        view["documents"] = list(row.data.get("documents", []))
    return view


def _extra_row_label(row: CaseStep, language: Language) -> str:
    """Label a checklist row that no step defines, such as a hearing reply, from its stored label."""
    label = row.data.get("label") if isinstance(row.data, dict) else None
    if isinstance(label, dict) and isinstance(label.get(language), str):
        return str(label[language])
    return row.step_id


def document_summary(document: Document | Any) -> dict[str, Any]:
    """Summarise a document, given as an ORM object or a row of its summary columns."""
    return {
        "number": document.number,
        "kind": document.kind,
        "title": document.title,
        "letter": document.letter_id,
        "language": document.language,
        "status": document.status,
        "sha256": document.sha256,
        "created_at": _iso(document.created_at),
        "created_by": document.created_by,
        "sent_at": _iso(document.sent_at),
    }


def document_view(document: Document) -> dict[str, Any]:
    view = document_summary(document)
    view["content_type"] = document.content_type
    view["recipient"] = document.recipient
    view["text"] = document.body_text
    view["html"] = document.body_html
    return view


def case_summary(case: Case, process: CompiledProcess, language: Language) -> dict[str, Any]:
    phase = process.phases.get(case.phase)
    return {
        "id": case.id,
        "journal_number": case.journal_number,
        "title": case.title,
        "process": case.process_id,
        "phase": {"id": case.phase, "label": phase.definition.label.get(language) if phase else case.phase},
        "status": case.status,
        "received_at": _iso(case.received_at),
        "updated_at": _iso(case.updated_at),
        "processing_deadline": _iso(case.processing_deadline_at),
        "version": case.version,
    }


def case_view(
    case: Case,
    steps: list[CaseStep],
    documents: Sequence[Any],
    version: VersionInfo,
    process: CompiledProcess,
    language: Language,
) -> dict[str, Any]:
    view = case_summary(case, process, language)
    view["process"] = {"id": case.process_id, "version": version.version, "title": process.title(language)}
    view["language"] = case.language
    view["closed_at"] = _iso(case.closed_at)
    view["created_by"] = case.created_by
    view["team"] = case.team
    view["assignee"] = case.assignee
    view["data"] = dict(case.data)
    view["checklist"] = [step_view(row, process, language) for row in sorted(steps, key=lambda r: r.id)]
    view["active_steps"] = [row.step_id for row in steps if row.status == "active"]
    view["documents"] = [document_summary(document) for document in sorted(documents, key=lambda d: d.number)]
    return view


def addressed_to(recipient: Mapping[str, Any] | None, party: Mapping[str, str]) -> bool:
    """Tell whether a letter's recipient is the case's party.

    Hearing letters go to other parties too, and the applicant must not see their
    addresses and CPR numbers. A letter filed without a recipient went to the party.
    """
    if recipient is None:
        return True
    if party["id_type"] != "NONE":
        return recipient.get("id_type") == party["id_type"] and recipient.get("id") == party["id"]
    return recipient.get("id_type") == "NONE" and recipient.get("name") == party["name"]


def shown_to_applicant(document: Any, party: Mapping[str, str], applicant: str) -> bool:
    """Tell whether an applicant may see `document` (an ORM object or a row with its columns).

    The applicant sees the application, the letters sent to the case's party, and the
    files they uploaded themselves.
    """
    if document.kind == DocumentKind.APPLICATION:
        return True
    if document.kind == DocumentKind.LETTER:
        return bool(document.status == DocumentStatus.SENT and addressed_to(document.recipient, party))
    return bool(document.kind == DocumentKind.UPLOAD and document.created_by == applicant)


def applicant_view(view: dict[str, Any], process: CompiledProcess) -> dict[str, Any]:
    """Cut a case view down to what its applicant may see.

    Applicants see their own application data, the phase and status, and the documents
    that `shown_to_applicant` allows; the caller picks those before building the view.
    Caseworkers' notes, drafts not yet decided, the checklist, the team, the assignee and
    who did what stay internal until they reach a letter.
    """
    application_fields = {name for name, field in process.fields.items() if field.source == "application"}
    hidden = {"checklist", "active_steps", "created_by", "team", "assignee"}
    restricted = {key: value for key, value in view.items() if key not in hidden}
    restricted["data"] = {name: value for name, value in view["data"].items() if name in application_fields}
    return restricted
