"""Render a case's letters and build the context their templates see.

Besides every case field, a template sees `case`, `authority`, `process`, `letter_date`,
`fee`, `appeal`, `language`, `recipient`, `deadlines` (the due dates of the current
phase's steps by step id, added by the command), `hearing` (None except in a letter that
a hearing or party hearing step sends, see `hearing_context`) and `report` (None except in
the letters of a scheme's request case, see `report_context`). `appeal.deadline` is the
actual expiry date of the appeal period counted from the letter's date on the Danish
calendar, which every decision letter must state.

Text the applicant typed reaches the template escaped for Markdown, so that a name such as
"[Klik](http://evil.example)" shows as written and never becomes a link. Text written by a
caseworker or the system is Markdown and may contain lists or emphasis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from engine.calendar import DayRule, DeadlineUnit, compute_deadline, local_date
from engine.definitions.compile import CompiledProcess
from engine.definitions.model import Deadline
from engine.definitions.templates import escape_markdown
from engine.i18n import Language
from engine.runtime.services import Services
from engine.storage.tables import Case

_UNITS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    # unit: ((Danish singular, plural), (English singular, plural))
    "calendar_days": (("dag", "dage"), ("day", "days")),
    "weeks": (("uge", "uger"), ("week", "weeks")),
    "months": (("måned", "måneder"), ("month", "months")),
    "working_days": (("arbejdsdag", "arbejdsdage"), ("working day", "working days")),
}


def describe_period(deadline: Deadline, language: Language) -> str:
    """Return a period as words, e.g. "4 uger" or "1 week"."""
    danish, english = _UNITS[deadline.unit]
    singular, plural = english if language == "en" else danish
    return f"{deadline.value} {singular if deadline.value == 1 else plural}"


def deadline_end(deadline: Deadline, start: datetime) -> datetime:
    return compute_deadline(start, deadline.value, DeadlineUnit(deadline.unit), DayRule(deadline.rule)).ends_at


def recipient_of(case: Case, process: CompiledProcess) -> dict[str, str]:
    """The party a letter goes to, identified by CVR or CPR as digital post requires."""
    data = case.data
    party = process.definition.party
    name = str(data.get(party.name or "applicant_name") or "")
    cvr_field, cpr_field = party.cvr or "applicant_cvr", party.cpr or "applicant_cpr"
    if data.get(cvr_field):
        recipient = {"id_type": "CVR", "id": data[cvr_field], "name": name}
    elif data.get(cpr_field):
        recipient = {"id_type": "CPR", "id": data[cpr_field], "name": name}
    else:
        recipient = {"id_type": "NONE", "id": "", "name": name}
    address = {
        "address": data.get(party.address or "applicant_address"),
        "postcode": data.get(party.postcode or "applicant_postcode"),
        "city": data.get(party.city or "applicant_city"),
    }
    if all(address.values()):
        recipient.update({key: str(value) for key, value in address.items()})
    return recipient


def field_context(process: CompiledProcess, name: str, stored: Any) -> Any:
    """Convert a stored field value for templates, escaping the applicant's text for Markdown.

    Enum values stay unchanged, because they are codes from the process definition that the
    `label` filter looks up.
    """
    value = process.field_types[name].to_context(stored)
    field = process.fields[name]
    if field.source != "application" or field.type == "enum":
        return value
    return _escaped(value)


def _escaped(value: Any) -> Any:
    """Escape every text inside a value, including the entries of a list of parties."""
    if isinstance(value, str):
        return escape_markdown(value)
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    return value


def letter_context(
    case: Case,
    process: CompiledProcess,
    services: Services,
    now: datetime,
    language: Language,
    fields: Collection[str] | None = None,
    shared: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the context a letter template renders with. `fields` limits the case fields to those the template reads.

    `shared` is what `shared_letter_context` returned for the same process, services, `now`
    and language. A caller that renders many letters passes it to build that part once.
    """
    names = process.fields if fields is None else fields
    context: dict[str, Any] = {name: field_context(process, name, case.data.get(name)) for name in names}

    deadline = case.processing_deadline_at
    context["case"] = {
        "journal_number": case.journal_number,
        # The process's case title template usually includes the applicant's name.
        "title": escape_markdown(case.title),
        "received": local_date(case.received_at),
        "processing_deadline": local_date(deadline) if deadline else None,
        "language": case.language,
    }
    if shared is None:
        context.update(shared_letter_context(process, services, now, language))
    else:
        context.update(copy_shared_context(shared))
    recipient = recipient_of(case, process)
    context["recipient"] = {**recipient, "name": escape_markdown(recipient["name"])}
    return context


def shared_letter_context(
    process: CompiledProcess, services: Services, now: datetime, language: Language
) -> dict[str, Any]:
    """Build the part of a letter's context that is the same for every case of a process at `now`.

    That is `authority`, `process`, `letter_date`, `fee`, `language`, `appeal` (with its
    deadline counted from `now`), and `hearing` and `report` as None.
    """
    definition = process.definition
    appeal = definition.appeal
    return {
        "authority": services.authority.as_context(),
        "process": {
            "id": definition.id,
            "title": definition.title.get(language),
            "classification": definition.classification,
            "legal_basis": [
                {"title": basis.title.get(language), "reference": basis.reference_in(language), "url": basis.url}
                for basis in definition.legal_basis
            ],
        },
        "letter_date": local_date(now),
        "fee": definition.fee.amount if definition.fee else None,
        "language": language,
        "hearing": None,
        "report": None,
        "appeal": (
            {
                "body": appeal.body.get(language),
                "how": appeal.how.get(language),
                "period": describe_period(appeal.deadline, language),
                "deadline": local_date(deadline_end(appeal.deadline, now)),
            }
            if appeal
            else None
        ),
    }


def copy_shared_context(shared: Mapping[str, Any]) -> dict[str, Any]:
    """Copy what `shared_letter_context` returned, down to the dicts and lists inside it.

    The sandbox lets a template call methods such as `dict.update` on its context, so each
    letter gets copies that no other letter reads.
    """
    context = {name: dict(value) if isinstance(value, dict) else value for name, value in shared.items()}
    process = context["process"]
    process["legal_basis"] = [dict(basis) for basis in process["legal_basis"]]
    return context


def hearing_context(
    kind: str, party: Mapping[str, str], deadline: datetime, reply_url: str, merged: Mapping[str, str]
) -> dict[str, Any]:
    """Build the `hearing` object of a hearing letter to one party.

    The party's name and postal address are escaped for Markdown like the applicant's text.
    For a party without an address, `address`, `postcode` and `city` are empty strings. The
    merged texts are the caseworker's and may contain Markdown, as caseworker fields may.
    """
    return {
        "kind": kind,
        "party": {
            "name": escape_markdown(party["name"]),
            "id_type": party["id_type"],
            "id": party["id"],
            "address": escape_markdown(party.get("address", "")),
            "postcode": party.get("postcode", ""),
            "city": escape_markdown(party.get("city", "")),
        },
        "deadline": local_date(deadline),
        "reply_url": reply_url,
        "merged": dict(merged),
    }


def report_context(period: str, deadline: datetime, reply_url: str | None) -> dict[str, Any]:
    """Build the `report` object of a letter in a scheme's request case: the period, the deadline and the link.

    `reply_url` is None for a request case that no scheme created, which has no reply link.
    """
    return {"period": period, "deadline": local_date(deadline), "reply_url": reply_url}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
