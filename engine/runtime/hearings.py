"""Hearings (høring) and party hearings (partshøring): opening one, the parties' replies, closing.

A step of kind `hearing` or `party_hearing` is active until a caseworker with its role
opens it with the parties to hear (`open_hearing`, run as one command on the case). Each
party gets the step's letter with a personal reply link. The link contains a single-use token
of which only the SHA-256 is stored; the filed letter shows `REDACTED` in its place, and
the outbox adds the token when it sends the letter (`engine/runtime/outbox.py`).

A party replies without logging in (`submit_reply`). The reply is filed on the case, and
when every party has replied the hearing closes and its step is done with the outcome
`answered`. At the deadline the worker closes the hearing (`close_at_deadline`) with the
outcome `partly_answered` or `deadline_passed`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.auth import Actor
from engine.definitions.fields import (
    CprType,
    CvrType,
    EmailType,
    FieldType,
    FieldValueError,
    PostcodeType,
    TextType,
    check_text,
)
from engine.definitions.model import HEARING_KINDS, FieldDef, Label
from engine.definitions.templates import format_moment
from engine.errors import BadRequest, CaseError, Conflict, FieldError, FieldErrors, InvalidInput, NotFound
from engine.i18n import Language, Text
from engine.records import MAX_UPLOAD_BYTES, resolve_file_type, sanitise_filename, upload_limit_text
from engine.runtime.catalog import ProcessCatalog
from engine.runtime.commands import CaseCommand, load_command, lock_case
from engine.runtime.letters import deadline_end, hearing_context, recipient_of, sha256_text
from engine.runtime.outbox import REDACTED_TOKEN, REPLY_PATH
from engine.runtime.services import Services
from engine.storage.database import Database, lock_errors_as_conflicts
from engine.storage.tables import (
    Case,
    CaseStep,
    Document,
    DocumentKind,
    DocumentStatus,
    Hearing,
    HearingParty,
    HearingStatus,
    StepStatus,
)

logger = logging.getLogger(__name__)

MAX_PARTIES = 50
MAX_MERGED_FIELDS = 20
MAX_MERGED_LENGTH = 20_000
MAX_REPLY_LENGTH = 100_000
MAX_ATTACHMENTS = 10
# Together a reply's attachments may be as large as one upload.
MAX_REPLY_ATTACHMENT_BYTES = MAX_UPLOAD_BYTES
# The types a reply's attachments may have; each is also checked as uploads are, in engine/records.py.
REPLY_ATTACHMENT_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "text/plain"})
TOKEN_BYTES = 32
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,100}")
_MERGED_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
REPLY_LABEL = {"da": "Høringssvar", "en": "Hearing reply"}
REPLY_KIND = "hearing_reply"

_PARTY_NAME = FieldDef(type="text", label=Label(da="Navn", en="Name"), max_length=200)
_PARTY_ID = FieldDef(type="text", label=Label(da="Nummer", en="Number"))
_PARTY_EMAIL = FieldDef(type="email", label=Label(da="E-mail", en="E-mail"))
_PARTY_ADDRESS = FieldDef(type="text", label=Label(da="Adresse", en="Address"), max_length=200)
_PARTY_POSTCODE = FieldDef(type="postcode", label=Label(da="Postnummer", en="Postcode"))
_PARTY_CITY = FieldDef(type="text", label=Label(da="By", en="City"), max_length=100)
# A party's postal address: all three parts or none. The hearing letter shows it under the
# party's name, where physical mail needs it.
_ADDRESS_PARTS: tuple[tuple[str, FieldType, FieldDef, Text], ...] = (
    (
        "address",
        TextType(),
        _PARTY_ADDRESS,
        Text("Adressen (vej og nummer) mangler.", "The street address is missing."),
    ),
    ("postcode", PostcodeType(), _PARTY_POSTCODE, Text("Postnummeret mangler.", "The postcode is missing.")),
    ("city", TextType(), _PARTY_CITY, Text("Bynavnet mangler.", "The city is missing.")),
)
_PARTY_KEYS = frozenset({"name", "id_type", "id", "email", "address", "postcode", "city"})
# The id_type of a party without a CVR or CPR number; its letter goes by physical mail.
NO_NUMBER = "NONE"
_MERGED_TEXT = FieldDef(
    type="text", label=Label(da="Flettefelt", en="Merge field"), multiline=True, max_length=MAX_MERGED_LENGTH
)


class Gone(CaseError):
    """The resource existed but is no longer available, such as an expired reply link (HTTP 410)."""

    status: ClassVar[int] = 410
    default_code = "gone"


@dataclass(frozen=True)
class PartyInput:
    """A party to hear. `id_type` is CVR, CPR or NONE; a party without a number has an empty `id` and an address."""

    name: str
    id_type: str
    id: str
    email: str | None = None
    address: str | None = None
    postcode: str | None = None
    city: str | None = None

    def recipient(self) -> dict[str, str]:
        """Return the letter's recipient as the outbox stores it, with the postal address when there is one."""
        recipient = {"id_type": self.id_type, "id": self.id, "name": self.name}
        if self.address is not None and self.postcode is not None and self.city is not None:
            recipient.update(address=self.address, postcode=self.postcode, city=self.city)
        return recipient

    def describe(self) -> str:
        """Name the party in a message: by its number, or by name and address without one."""
        if self.id_type != NO_NUMBER:
            return f"{self.id_type} {self.id}"
        return f"{self.name} ({self.address}, {self.postcode} {self.city})"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# Opening ----------------------------------------------------------------------------------


def parse_parties(raw: Any, services: Services, errors: FieldErrors) -> list[PartyInput]:
    """Parse the parties of a hearing request, adding every problem to `errors`."""
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        errors.add("parties", "invalid_type", Text("Skal være en liste af parter.", "Must be a list of parties."))
        return []
    if not raw:
        errors.add(
            "parties",
            "required",
            Text("Angiv mindst én part, der skal høres.", "Give at least one party to hear."),
            Text(
                'Send fx {"parties": [{"name": "...", "id_type": "CVR", "id": "..."}]}.',
                'Send for example {"parties": [{"name": "...", "id_type": "CVR", "id": "..."}]}.',
            ),
        )
        return []
    if len(raw) > MAX_PARTIES:
        errors.add(
            "parties",
            "too_many",
            Text(
                f"En høring kan højst have {MAX_PARTIES} parter, ikke {len(raw)}.",
                f"A hearing can have at most {MAX_PARTIES} parties, not {len(raw)}.",
            ),
            Text("Del høringen op på flere trin.", "Split the hearing over several steps."),
        )
        return []
    parties: list[PartyInput] = []
    seen: dict[tuple[str, ...], int] = {}
    for index, entry in enumerate(raw):
        party = _parse_party(index, entry, services, errors)
        if party is None:
            continue
        # Without a number, the same name at the same address is the same party.
        key = (
            (party.id_type, party.id)
            if party.id_type != NO_NUMBER
            else (NO_NUMBER, party.name.casefold(), (party.address or "").casefold(), party.postcode or "")
        )
        if key in seen:
            errors.add(
                f"parties.{index}.id" if party.id_type != NO_NUMBER else f"parties.{index}.name",
                "duplicate",
                Text(
                    f"Parten {party.describe()} står også som part nr. {seen[key] + 1}.",
                    f"The party {party.describe()} is also party number {seen[key] + 1}.",
                ),
            )
            continue
        seen[key] = index
        parties.append(party)
    return parties


def _parse_party(index: int, entry: Any, services: Services, errors: FieldErrors) -> PartyInput | None:
    where = f"parties.{index}"
    if not isinstance(entry, Mapping):
        errors.add(where, "invalid_type", Text("Skal være et JSON-objekt.", "Must be a JSON object."))
        return None
    unknown = sorted(str(key) for key in set(entry) - _PARTY_KEYS)
    if unknown:
        listed = ", ".join(unknown)
        errors.add(where, "unknown_field", Text(f"Ukendte felter: {listed}.", f"Unknown fields: {listed}."))
        return None
    values: dict[str, Any] = {}
    for key, parser, field in (("name", TextType(), _PARTY_NAME), ("email", EmailType(), _PARTY_EMAIL)):
        if entry.get(key) is None:
            if key == "name":
                errors.add(f"{where}.name", "required", Text("Navnet mangler.", "The name is missing."))
            continue
        try:
            values[key] = parser.parse(entry[key], field, services)
        except FieldValueError as error:
            errors.add(f"{where}.{key}", error.code, error.text, error.hint)
    address = _parse_address(where, entry, services, errors)
    id_type = entry.get("id_type")
    if id_type not in ("CVR", "CPR", NO_NUMBER):
        errors.add(
            f"{where}.id_type",
            "invalid_value",
            Text("Skal være CVR, CPR eller NONE.", "Must be CVR, CPR or NONE."),
            Text(
                "Digital post kræver et CVR- eller CPR-nummer. En part uden nummer (NONE) får brevet med "
                "almindelig post og skal have address, postcode og city.",
                "Digital post needs a CVR or CPR number. A party without a number (NONE) gets the letter by "
                "physical mail and needs address, postcode and city.",
            ),
        )
    elif id_type == NO_NUMBER:
        _check_party_without_number(where, entry, errors)
        values["id"] = ""
    elif entry.get("id") is None:
        errors.add(f"{where}.id", "required", Text("Nummeret mangler.", "The number is missing."))
    else:
        number_type: FieldType = CvrType() if id_type == "CVR" else CprType()
        try:
            values["id"] = number_type.parse(entry["id"], _PARTY_ID, services)
        except FieldValueError as error:
            errors.add(f"{where}.id", error.code, error.text, error.hint)
    if (
        "name" not in values
        or "id" not in values
        or (entry.get("email") is not None and "email" not in values)
        or address is None
        or (id_type == NO_NUMBER and not address)
        or (id_type == NO_NUMBER and entry.get("id") not in (None, ""))
    ):
        return None
    return PartyInput(
        name=values["name"],
        id_type=str(id_type),
        id=values["id"],
        email=values.get("email"),
        address=address.get("address"),
        postcode=address.get("postcode"),
        city=address.get("city"),
    )


def _parse_address(
    where: str, entry: Mapping[str, Any], services: Services, errors: FieldErrors
) -> dict[str, str] | None:
    """Parse a party's postal address: {} when the party has none, None when it is invalid or incomplete."""
    given = [key for key, _, _, _ in _ADDRESS_PARTS if entry.get(key) is not None]
    if not given:
        return {}
    address: dict[str, str] = {}
    for key, parser, field, missing in _ADDRESS_PARTS:
        if entry.get(key) is None:
            errors.add(
                f"{where}.{key}",
                "required",
                missing,
                Text(
                    "En postadresse skal have alle tre dele: address, postcode og city.",
                    "A postal address needs all three parts: address, postcode and city.",
                ),
            )
            continue
        try:
            address[key] = parser.parse(entry[key], field, services)
        except FieldValueError as error:
            errors.add(f"{where}.{key}", error.code, error.text, error.hint)
    return address if len(address) == len(_ADDRESS_PARTS) else None


def _check_party_without_number(where: str, entry: Mapping[str, Any], errors: FieldErrors) -> None:
    """Check that a party with id_type NONE has no number and has a postal address to post its letter to."""
    if entry.get("id") not in (None, ""):
        errors.add(
            f"{where}.id",
            "not_allowed",
            Text(
                "En part med id_type NONE har intet nummer; udelad id.",
                "A party with id_type NONE has no number; leave out id.",
            ),
            Text(
                "Angiv CVR eller CPR som id_type, hvis parten har et nummer.",
                "Give CVR or CPR as id_type if the party has a number.",
            ),
        )
    if all(entry.get(key) is None for key, _, _, _ in _ADDRESS_PARTS):
        errors.add(
            f"{where}.address",
            "required",
            Text(
                "En part uden CVR- eller CPR-nummer skal have en postadresse, for brevet sendes med almindelig post.",
                "A party without a CVR or CPR number needs a postal address, because the letter goes by physical mail.",
            ),
            Text(
                'Angiv fx "address": "Kajgade 1", "postcode": "8600", "city": "Silkeborg".',
                'Give for example "address": "Kajgade 1", "postcode": "8600", "city": "Silkeborg".',
            ),
        )


def parse_merged(raw: Any, services: Services, errors: FieldErrors) -> dict[str, str]:
    """Parse the caseworker's texts for the letter's merge fields: {"key": "text"}."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors.add("merged", "invalid_type", Text("Skal være et JSON-objekt.", "Must be a JSON object."))
        return {}
    if len(raw) > MAX_MERGED_FIELDS:
        errors.add(
            "merged",
            "too_many",
            Text(f"Højst {MAX_MERGED_FIELDS} flettefelter.", f"At most {MAX_MERGED_FIELDS} merge fields."),
        )
        return {}
    merged: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not _MERGED_KEY.fullmatch(key):
            errors.add(
                "merged",
                "invalid_key",
                Text(
                    f"Navnet '{str(key)[:64]}' er ugyldigt; brug små bogstaver, cifre og _.",
                    f"The name '{str(key)[:64]}' is invalid; use lower-case letters, digits and _.",
                ),
            )
            continue
        try:
            merged[key] = TextType().parse(value, _MERGED_TEXT, services)
        except FieldValueError as error:
            errors.add(f"merged.{key}", error.code, error.text, error.hint)
    return merged


def _case_party(command: CaseCommand) -> PartyInput | None:
    """Return the case's own party (the applicant or the inspected party), or None when a letter cannot reach it.

    A letter reaches a party with a CVR or CPR number by digital post, and one without a
    number by physical mail when the case contains its postal address.
    """
    recipient = recipient_of(command.case, command.process)
    if not recipient["name"] or (recipient["id_type"] == NO_NUMBER and "address" not in recipient):
        return None
    return PartyInput(
        name=recipient["name"],
        id_type=recipient["id_type"],
        id=recipient["id"],
        address=recipient.get("address"),
        postcode=recipient.get("postcode"),
        city=recipient.get("city"),
    )


def _same_party(first: PartyInput, second: PartyInput) -> bool:
    if first.id_type != NO_NUMBER or second.id_type != NO_NUMBER:
        return first.id_type == second.id_type and first.id.replace("-", "") == second.id.replace("-", "")
    return first.name.casefold() == second.name.casefold() and first.address == second.address


def _with_case_party(command: CaseCommand, given: list[PartyInput], errors: FieldErrors) -> list[PartyInput]:
    """Return the parties of a party hearing: the case's own party first, then any others given.

    Forvaltningsloven § 19 gives the party of the case the right to be heard, so a party
    hearing always includes it. Other parties may be heard beside it.
    """
    own = _case_party(command)
    if own is None:
        errors.add(
            "parties",
            "party_unreachable",
            Text(
                "Sagens part har hverken CVR- eller CPR-nummer eller en postadresse på sagen, så partshøringen "
                "kan ikke nå parten.",
                "The case's party has neither a CVR nor a CPR number nor a postal address on the case, so the "
                "party hearing cannot reach it.",
            ),
            Text(
                "Ret partens nummer eller adresse på sagen, og åbn partshøringen igen.",
                "Correct the party's number or address on the case, and open the party hearing again.",
            ),
        )
        return given
    return [own, *(party for party in given if not _same_party(party, own))]


def open_hearing(command: CaseCommand, step_id: str, raw_parties: Any, raw_merged: Any) -> Hearing:
    """Open the hearing of an active hearing step: one letter with a reply link per party.

    A party hearing always hears the case's own party, and any other parties given beside it.
    """
    waiting = [row for row in command.current_rows() if row.step_id == step_id and row.status == StepStatus.WAITING]
    if waiting and waiting[-1].due_at is not None:
        raise Conflict(
            Text(
                f"Høringen i trinnet '{step_id}' er allerede åben; den venter på svar til "
                f"{format_moment(waiting[-1].due_at, 'da')}.",
                f"The hearing in the step '{step_id}' is already open; it waits for replies until "
                f"{format_moment(waiting[-1].due_at, 'en')}.",
            ),
            code="hearing_open",
            field="step",
            hint=Text(
                "Svar, der kommer med post eller e-mail, registreres med /hearing/replies.",
                "Replies that come by post or e-mail are recorded with /hearing/replies.",
            ),
        )
    row, step = command.active_step(step_id)
    definition = step.definition
    if definition.kind not in HEARING_KINDS:
        raise BadRequest(
            Text(
                f"Trinnet '{step_id}' er ikke en høring; brug /complete eller /approve.",
                f"The step '{step_id}' is not a hearing; use /complete or /approve.",
            ),
            code="wrong_step_kind",
            field="step",
        )
    command.require_role(definition.role)

    errors = FieldErrors()
    if definition.kind == "party_hearing":
        given = parse_parties(raw_parties, command.services, errors) if raw_parties else []
        parties = _with_case_party(command, given, errors)
    else:
        parties = parse_parties(raw_parties, command.services, errors)
    for party in parties:
        exempt = party.id_type != NO_NUMBER and command.services.digital_post.is_exempt(party.id_type, party.id)
        if exempt and party.address is None:
            errors.add(
                "parties",
                "address_required",
                Text(
                    f"{party.name} ({party.describe()}) er fritaget for digital post, så brevet skal sendes med "
                    "almindelig post, men der er ingen postadresse.",
                    f"{party.name} ({party.describe()}) is exempt from digital post, so the letter must go by "
                    "physical mail, but there is no postal address.",
                ),
                Text(
                    "Angiv partens address, postcode og city.",
                    "Give the party's address, postcode and city.",
                ),
            )
    merged = parse_merged(raw_merged, command.services, errors)
    errors.raise_if_any()

    # Validation makes every hearing step name a letter and a deadline.
    letter_id = definition.letter or ""
    if definition.deadline is None:  # pragma: no cover - validation requires it
        raise ValueError(f"hearing step {step_id} has no deadline")
    # The reply period runs from the day the letters go out, not from when the phase began.
    deadline = deadline_end(definition.deadline, command.now)
    command.wait(row, deadline)
    hearing = Hearing(
        case_id=command.case.id,
        step_instance_id=row.id,
        kind=definition.kind,
        status=HearingStatus.OPEN,
        deadline_at=deadline,
        merged=merged,
        opened_by=command.actor.name,
        opened_at=command.now,
    )
    command.session.add(hearing)

    reply_url = f"{command.services.public_url}{REPLY_PATH}{REDACTED_TOKEN}"
    letters: list[tuple[PartyInput, str, Document]] = []
    for party in parties:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        context = hearing_context(definition.kind, party.recipient(), deadline, reply_url, merged)
        document = command.send_letter(
            letter_id, row, recipient=party.recipient(), hearing=context, payload={"reply_token": token}
        )
        letters.append((party, token, document))
    # The party rows refer to the hearing and its letters by id.
    command.session.flush()
    for party, token, document in letters:
        command.session.add(
            HearingParty(
                hearing_id=hearing.id,
                name=party.name,
                id_type=party.id_type,
                party_id=party.id,
                email=party.email,
                address=party.address,
                postcode=party.postcode,
                city=party.city,
                token_hash=hash_token(token),
                expires_at=deadline,
                letter_document_id=document.id,
            )
        )
    row.data = {**row.data, "hearing": hearing.id, "parties": len(parties), "replies": 0}
    command.changes["hearing"] = {
        "opened": step_id,
        "parties": [{"name": party.name, "id_type": party.id_type} for party in parties],
        "deadline": deadline.isoformat(),
    }
    logger.info(
        "Hearing %s opened on step %s of case %s with %d parties, deadline %s",
        hearing.id,
        step_id,
        command.case.journal_number,
        len(parties),
        deadline.isoformat(),
    )
    return hearing


# Replies ----------------------------------------------------------------------------------


def _unknown_link() -> NotFound:
    return NotFound(
        Text("Svarlinket findes ikke.", "The reply link does not exist."),
        code="unknown_reply_link",
        hint=Text(
            "Brug linket fra brevet præcis, som det står. Kontakt myndigheden, hvis det ikke virker.",
            "Use the link from the letter exactly as written. Contact the authority if it does not work.",
        ),
    )


def _expired_link(deadline: datetime) -> Gone:
    return Gone(
        Text(
            f"Fristen for at svare udløb {format_moment(deadline, 'da')}, og linket kan ikke bruges længere.",
            f"The deadline for replying passed on {format_moment(deadline, 'en')}, and the link can no longer be used.",
        ),
        code="reply_link_expired",
        hint=Text(
            "Kontakt myndigheden, hvis du stadig vil svare.",
            "Contact the authority if you still want to reply.",
        ),
    )


def _used_link(used_at: datetime) -> Conflict:
    return Conflict(
        Text(
            f"Der er allerede svaret via dette link ({format_moment(used_at, 'da')}); et link kan kun bruges én gang.",
            f"A reply was already given through this link ({format_moment(used_at, 'en')}); a link can be used "
            "only once.",
        ),
        code="already_replied",
        hint=Text(
            "Send yderligere bemærkninger til myndigheden med sagens journalnummer.",
            "Send further comments to the authority quoting the case's journal number.",
        ),
    )


def _find_party(session: Session, token: str, *, lock: bool = False) -> HearingParty:
    if not _TOKEN_SHAPE.fullmatch(token):
        raise _unknown_link()
    query = select(HearingParty).where(HearingParty.token_hash == hash_token(token))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    party = session.scalars(query).one_or_none()
    if party is None:
        raise _unknown_link()
    return party


def _check_usable(party: HearingParty, hearing: Hearing, now: datetime) -> None:
    if party.used_at is not None:
        raise _used_link(party.used_at)
    if hearing.status != HearingStatus.OPEN or party.expires_at <= now:
        raise _expired_link(min(party.expires_at, hearing.closed_at or party.expires_at))


def reply_request(
    database: Database, services: Services, catalog: ProcessCatalog, token: str, language: Language
) -> dict[str, Any]:
    """Describe the hearing a reply link belongs to: the case's journal number, the process and the deadline."""
    with database.read() as session:
        party = _find_party(session, token)
        hearing = session.get(Hearing, party.hearing_id)
        case = session.get(Case, hearing.case_id) if hearing is not None else None
        if hearing is None or case is None:  # pragma: no cover - foreign keys keep both
            raise _unknown_link()
        _check_usable(party, hearing, services.clock())
        _, process = catalog.by_version_id(session, case.process_version_id)
        return {
            "journal_number": case.journal_number,
            "process": process.title(language),
            "kind": hearing.kind,
            "deadline": party.expires_at.isoformat(),
        }


def reply_limit_text() -> Text:
    megabytes = MAX_REPLY_ATTACHMENT_BYTES // 1_000_000
    return Text(
        f"Bilagene til et høringssvar må tilsammen fylde højst {megabytes} MB. Send færre eller mindre filer.",
        f"A hearing reply's attachments may be at most {megabytes} MB together. Send fewer or smaller files.",
    )


def parse_reply(raw_text: Any, raw_attachments: Any) -> tuple[str, list[Attachment]]:
    """Check a reply's text and attachments before anything is stored; raise InvalidInput listing every problem."""
    errors = FieldErrors()
    text = _check_reply_text(raw_text, errors)
    attachments: list[Attachment] = []
    if raw_attachments is not None and not isinstance(raw_attachments, list):
        errors.add("attachments", "invalid_type", Text("Skal være en liste.", "Must be a list."))
    elif raw_attachments:
        if len(raw_attachments) > MAX_ATTACHMENTS:
            errors.add("attachments", "too_many", _too_many_attachments())
        else:
            for index, entry in enumerate(raw_attachments):
                attachment = parse_attachment(f"attachments.{index}", entry, errors)
                if attachment is not None:
                    attachments.append(attachment)
            _check_total_size("attachments", attachments, errors)
    errors.raise_if_any()
    return text, attachments


def parse_form_reply(raw_text: Any, uploads: Sequence[Attachment]) -> tuple[str, list[Attachment]]:
    """Check a reply from the reply page's HTML form as `parse_reply` checks a JSON reply.

    `uploads` are the files as the browser sent them, not yet checked: the name as given,
    the declared type and the bytes. Errors name the fields `text` and `files.N`.
    """
    errors = FieldErrors()
    text = _check_reply_text(raw_text, errors)
    attachments: list[Attachment] = []
    if len(uploads) > MAX_ATTACHMENTS:
        errors.add("files", "too_many", _too_many_attachments())
    else:
        for index, upload in enumerate(uploads):
            attachment = _check_upload(f"files.{index}", upload, errors)
            if attachment is not None:
                attachments.append(attachment)
        _check_total_size("files", attachments, errors)
    errors.raise_if_any()
    return text, attachments


def _check_reply_text(raw_text: Any, errors: FieldErrors) -> str:
    if not isinstance(raw_text, str) or not raw_text.strip():
        errors.add("text", "required", Text("Skriv dit svar.", "Write your reply."))
        return ""
    text = ""
    try:
        text = check_text(raw_text).strip()
    except FieldValueError as error:
        errors.add("text", error.code, error.text, error.hint)
    if len(text) > MAX_REPLY_LENGTH:
        errors.add(
            "text",
            "too_long",
            Text(
                f"Svaret må højst være {MAX_REPLY_LENGTH} tegn.",
                f"The reply may be at most {MAX_REPLY_LENGTH} characters.",
            ),
            Text("Vedhæft længere tekst som en fil.", "Attach longer text as a file."),
        )
    return text


def _too_many_attachments() -> Text:
    return Text(f"Højst {MAX_ATTACHMENTS} bilag.", f"At most {MAX_ATTACHMENTS} attachments.")


def _check_total_size(where: str, attachments: list[Attachment], errors: FieldErrors) -> None:
    total = sum(len(attachment.content) for attachment in attachments)
    if total > MAX_REPLY_ATTACHMENT_BYTES:
        errors.add(where, "too_large", reply_limit_text())


def parse_attachment(where: str, entry: Any, errors: FieldErrors) -> Attachment | None:
    """Check one attachment as uploads are checked, and that its type is one a reply may have.

    The file name is cleaned and its extension, the declared type and the first bytes must
    agree (`engine.records.resolve_file_type`); the content is base64 of at most
    `MAX_UPLOAD_BYTES` bytes. White space in the base64 text is ignored, because common
    encoders (such as the `base64` command) wrap their output into lines.
    """
    if not isinstance(entry, Mapping) or set(entry) != {"filename", "content_type", "content_base64"}:
        errors.add(
            where,
            "invalid_value",
            Text(
                "Et bilag skal være et objekt med filename, content_type og content_base64.",
                "An attachment must be an object with filename, content_type and content_base64.",
            ),
        )
        return None
    try:
        filename = sanitise_filename(str(entry["filename"]))
        content = base64.b64decode("".join(str(entry["content_base64"]).split()), validate=True)
    except InvalidInput as invalid:
        for error in invalid.errors:
            errors.add(f"{where}.filename", error.code, error.text, error.hint)
        return None
    except (binascii.Error, ValueError):
        errors.add(
            f"{where}.content_base64",
            "invalid_value",
            Text("Indholdet er ikke gyldig base64.", "The content is not valid base64."),
        )
        return None
    return _check_content(where, f"{where}.content_base64", filename, str(entry["content_type"]), content, errors)


def _check_upload(where: str, upload: Attachment, errors: FieldErrors) -> Attachment | None:
    try:
        filename = sanitise_filename(upload.filename)
    except InvalidInput as invalid:
        for error in invalid.errors:
            errors.add(f"{where}.filename", error.code, error.text, error.hint)
        return None
    return _check_content(where, where, filename, upload.content_type, upload.content, errors)


def _check_content(
    where: str, content_field: str, filename: str, declared_type: str, content: bytes, errors: FieldErrors
) -> Attachment | None:
    """Check a file's size and its type by name, declared type and first bytes, against the reply's allowed types."""
    if not content:
        errors.add(content_field, "empty", Text("Filen er tom.", "The file is empty."))
        return None
    if len(content) > MAX_UPLOAD_BYTES:
        errors.add(content_field, "too_large", upload_limit_text())
        return None
    try:
        content_type = resolve_file_type(filename, declared_type, content)
    except CaseError as error:
        errors.add(where, error.code, error.text, error.hint)
        return None
    if content_type.split(";")[0] not in REPLY_ATTACHMENT_TYPES:
        allowed = ", ".join(sorted(REPLY_ATTACHMENT_TYPES))
        errors.add(
            f"{where}.content_type",
            "unsupported_type",
            Text(
                f"Et høringssvar kan ikke have bilag af typen {content_type}; tilladt: {allowed}.",
                f"A hearing reply cannot have attachments of the type {content_type}; allowed: {allowed}.",
            ),
        )
        return None
    return Attachment(filename=filename, content_type=content_type, content=content)


def submit_reply(
    database: Database,
    services: Services,
    catalog: ProcessCatalog,
    token: str,
    raw_text: Any,
    raw_attachments: Any,
) -> dict[str, Any]:
    """Check a party's reply from the JSON API and file it on the case (see `file_reply`)."""
    text, attachments = parse_reply(raw_text, raw_attachments)
    return file_reply(database, services, catalog, token, text, attachments)


def file_reply(
    database: Database,
    services: Services,
    catalog: ProcessCatalog,
    token: str,
    text: str,
    attachments: list[Attachment],
) -> dict[str, Any]:
    """File a checked reply (from `parse_reply` or `parse_form_reply`) on the case in one command.

    The link works once, and the last party's reply closes the hearing.
    """
    with lock_errors_as_conflicts(), database.write() as session:
        party = _find_party(session, token)
        hearing = session.get(Hearing, party.hearing_id)
        if hearing is None:  # pragma: no cover - the foreign key keeps it
            raise _unknown_link()
        case = lock_case(session, hearing.case_id, postgresql=database.is_postgresql)
        if case is None:  # pragma: no cover - the foreign key keeps it
            raise _unknown_link()
        # Read again under the case lock: a reply through the same link may just have committed.
        party = _find_party(session, token, lock=database.is_postgresql)
        session.refresh(hearing)
        now = services.clock()
        _check_usable(party, hearing, now)

        _, process = catalog.by_version_id(session, case.process_version_id)
        actor = Actor(name=f"hearing-party:{party.id}", roles=frozenset())
        command = load_command(session, services, process, case, actor, "hearing_reply")
        row = next((step for step in command.steps if step.id == hearing.step_instance_id), None)
        if row is None or row.status != StepStatus.WAITING:
            # The phase went on without the hearing (an optional step), so the hearing is over.
            raise _expired_link(now)

        numbers = _file_party_reply(command, hearing, row, party, text, attachments)
        command.finish()
        logger.info("Hearing %s of case %s: reply filed as documents %s", hearing.id, case.journal_number, numbers)
        return {
            "journal_number": case.journal_number,
            "received_at": now.isoformat(),
            "documents": len(numbers),
        }


def _file_party_reply(
    command: CaseCommand,
    hearing: Hearing,
    row: CaseStep,
    party: HearingParty,
    text: str,
    attachments: list[Attachment],
) -> list[int]:
    """File one party's reply as a "Høringssvar" row with its documents; close the hearing after the last party.

    Returns the numbers of the filed documents. The caller has locked the case and checked
    that the hearing step waits and the party has not replied.
    """
    session = command.session
    documents = _add_reply_documents(command, command.case, party, text, attachments)
    session.flush()
    party.used_at = command.now
    party.reply_document_id = documents[0].id
    number = 1 + sum(1 for step in command.steps if step.kind == REPLY_KIND)
    numbers = [document.number for document in documents]
    reply_row = command.add_done_row(
        row,
        f"hearing_reply_{number}",
        REPLY_KIND,
        "received",
        {"label": REPLY_LABEL, "hearing_step": row.step_id, "party": party.name, "documents": numbers},
    )
    for document in documents:
        document.step = reply_row
    row.data = {**row.data, "replies": int(row.data.get("replies", 0)) + 1}
    command.changes["hearing"] = {"reply": row.step_id, "party": party.name, "documents": numbers}

    remaining = session.scalar(
        select(HearingParty.id).where(
            HearingParty.hearing_id == hearing.id, HearingParty.used_at.is_(None), HearingParty.id != party.id
        )
    )
    if remaining is None:
        hearing.status = HearingStatus.CLOSED
        hearing.closed_at = command.now
        command.finish_waiting(row, "answered")
    return numbers


def record_reply(command: CaseCommand, step_id: str, party_ref: Any, raw_text: Any, raw_attachments: Any) -> list[int]:
    """File a reply that reached the authority another way, by post or e-mail, for a party that has not replied.

    A user with the hearing step's role records it; `party_ref` is the party's CVR or CPR
    number or its name. The party's reply link stops working, as if the party had used it.
    Returns the numbers of the filed documents.
    """
    text, attachments = parse_reply(raw_text, raw_attachments)
    found = command.process.step(step_id)
    rows = [row for row in command.current_rows() if row.step_id == step_id]
    if found is None or found[1].definition.kind not in HEARING_KINDS or not rows:
        raise NotFound(
            Text(
                f"Sagen har ingen høring i trinnet '{step_id}' i den nuværende fase.",
                f"The case has no hearing in the step '{step_id}' in its current phase.",
            ),
            code="unknown_hearing",
            field="step",
        )
    command.require_role(found[1].definition.role)
    row = rows[-1]
    hearing = command.session.scalars(
        select(Hearing).where(Hearing.step_instance_id == row.id, Hearing.status == HearingStatus.OPEN)
    ).one_or_none()
    if hearing is None or row.status != StepStatus.WAITING:
        raise Conflict(
            Text(
                f"Høringen i trinnet '{step_id}' er ikke åben; der kan ikke registreres svar.",
                f"The hearing in the step '{step_id}' is not open; no reply can be recorded.",
            ),
            code="hearing_not_open",
            field="step",
            hint=Text(
                "Åbn høringen først, eller læg et sent svar på sagen som dokument.",
                "Open the hearing first, or file a late reply on the case as a document.",
            ),
        )
    waiting = list(
        command.session.scalars(
            select(HearingParty)
            .where(HearingParty.hearing_id == hearing.id, HearingParty.used_at.is_(None))
            .order_by(HearingParty.id)
        )
    )
    reference = str(party_ref or "").strip()
    matches = [
        party
        for party in waiting
        if (party.party_id and party.party_id.replace("-", "") == reference.replace("-", ""))
        or party.name.casefold() == reference.casefold()
    ]
    if len(matches) != 1:
        listed = ", ".join(f"{party.name} ({party.id_type} {party.party_id})".replace(" )", ")") for party in waiting)
        raise InvalidInput(
            [
                FieldError(
                    "party",
                    "unknown_party" if not matches else "ambiguous_party",
                    Text(
                        f"'{reference}' er ikke netop én af de parter, der mangler at svare.",
                        f"'{reference}' is not exactly one of the parties that have not replied.",
                    ),
                    Text(
                        f"Angiv CVR- eller CPR-nummer eller navn på en af: {listed or 'ingen'}.",
                        f"Give the CVR or CPR number or the name of one of: {listed or 'none'}.",
                    ),
                )
            ]
        )
    return _file_party_reply(command, hearing, row, matches[0], text, attachments)


def _add_reply_documents(
    command: CaseCommand, case: Case, party: HearingParty, text: str, attachments: list[Attachment]
) -> list[Document]:
    english = case.language == "en"
    documents = [
        command.add_document(
            kind=DocumentKind.HEARING_REPLY,
            title=(f"Hearing reply from {party.name}" if english else f"Høringssvar fra {party.name}")[:300],
            letter_id=None,
            language=case.language,
            content_type="text/plain; charset=utf-8",
            body_text=text,
            body_html=None,
            sha256=sha256_text(text),
            status=DocumentStatus.FILED,
            recipient=None,
            step=None,
            sent_at=None,
        )
    ]
    for attachment in attachments:
        documents.append(
            command.add_document(
                kind=DocumentKind.HEARING_REPLY,
                title=attachment.filename[:300],
                letter_id=None,
                language=case.language,
                content_type=attachment.content_type,
                body_text="",
                body_html=None,
                content=attachment.content,
                filename=attachment.filename,
                size=len(attachment.content),
                sha256=hashlib.sha256(attachment.content).hexdigest(),
                status=DocumentStatus.FILED,
                recipient=None,
                step=None,
                sent_at=None,
            )
        )
    return documents


# Closing at the deadline --------------------------------------------------------------------


def close_at_deadline(command: CaseCommand, hearing: Hearing) -> str | None:
    """Close a hearing whose deadline has passed; return the step's outcome, or None if the step had moved on.

    Unused reply links expire now. The step is done with `partly_answered` when some
    parties replied and `deadline_passed` when none did, and the case settles.
    """
    session = command.session
    parties = list(session.scalars(select(HearingParty).where(HearingParty.hearing_id == hearing.id)))
    replied = [party for party in parties if party.used_at is not None]
    for party in parties:
        if party.used_at is None and party.expires_at > command.now:
            party.expires_at = command.now
    hearing.status = HearingStatus.CLOSED
    hearing.closed_at = command.now
    row = next((step for step in command.steps if step.id == hearing.step_instance_id), None)
    if row is None or row.status != StepStatus.WAITING:
        command.changes["hearing"] = {"closed": hearing.id}
        return None
    if len(replied) == len(parties):
        outcome = "answered"
    elif replied:
        outcome = "partly_answered"
    else:
        outcome = "deadline_passed"
    command.changes["hearing"] = {
        "closed": row.step_id,
        "replies": len(replied),
        "parties": len(parties),
        "outcome": outcome,
    }
    command.finish_waiting(row, outcome)
    return outcome
