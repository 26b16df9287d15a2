"""Digital post (e-Boks / Digital Post) adapter, with fakes for development and tests.

A message is shaped after the MeMo format that Danish digital post uses: a header with
the message id, a label (subject), sender and recipient with their id types (CVR or
CPR), the case reference and the journal classification, and a body with the main
document. Sending is idempotent on the message id: sending the same id twice delivers
once and returns the first receipt, so the outbox may retry safely.

Citizens and companies exempt from digital post, and recipients with no CVR or CPR number
(id type NONE), cannot receive a message: `send` raises `RecipientExempt`, and the outbox
sends the letter by physical mail instead (`engine/adapters/physical_mail.py`).
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Party:
    id_type: str  # "CVR", "CPR", or "NONE" for a recipient without either number
    id: str
    name: str
    # The postal address, for letters sent by physical mail; None when it is not known.
    address: str | None = None
    postcode: str | None = None
    city: str | None = None


@dataclass(frozen=True)
class PostMessage:
    message_id: str
    label: str
    sender: Party
    recipient: Party
    case_reference: str
    classification: str
    created: str  # ISO 8601 UTC
    main_document_title: str
    main_document_text: str
    main_document_html: str | None
    language: str = "da"

    def as_memo(self) -> dict[str, object]:
        """Return the message as a MeMo-shaped dictionary (header plus body)."""
        return {
            "MessageHeader": {
                "messageType": "DIGITALPOST",
                "messageUUID": self.message_id,
                "label": self.label,
                "mandatory": False,
                "legalNotification": True,
                "Sender": {"senderID": self.sender.id, "idType": self.sender.id_type, "label": self.sender.name},
                "Recipient": {
                    "recipientID": self.recipient.id,
                    "idType": self.recipient.id_type,
                    "label": self.recipient.name,
                },
                "ContentData": {"caseReference": self.case_reference, "classification": self.classification},
            },
            "MessageBody": {
                "createdDateTime": self.created,
                "MainDocument": {
                    "label": self.main_document_title,
                    "File": [
                        {"encodingFormat": "text/plain", "language": self.language, "content": self.main_document_text},
                        *(
                            [
                                {
                                    "encodingFormat": "text/html",
                                    "language": self.language,
                                    "content": self.main_document_html,
                                }
                            ]
                            if self.main_document_html
                            else []
                        ),
                    ],
                },
            },
        }


class DeliveryError(Exception):
    """The message was not delivered; the outbox keeps it and retries later."""


class RecipientExempt(DeliveryError):
    """The recipient is exempt from digital post or has no CVR or CPR number; send the letter by physical mail."""


def normalise_id(number: str) -> str:
    """Return the digits of a CVR or CPR number, so that "010190-1234" and "0101901234" match."""
    return re.sub(r"\D", "", number)


def _check_reachable(recipient: Party, exempt: Iterable[str]) -> None:
    if recipient.id_type == "NONE" or not recipient.id:
        raise RecipientExempt(f"the recipient {recipient.name!r} has no CVR or CPR number")
    if normalise_id(recipient.id) in exempt:
        raise RecipientExempt(f"the recipient {recipient.id_type} {recipient.id} is exempt from digital post")


class DigitalPost(Protocol):
    def send(self, message: PostMessage) -> str:
        """Deliver the message and return the receipt id; repeat calls with one id deliver once."""
        ...

    def is_exempt(self, id_type: str, number: str) -> bool:
        """Tell whether a CVR or CPR number is exempt from digital post, so its letters go by physical mail."""
        ...


class MailboxDigitalPost:
    """Fake digital post that writes each message as a JSON file into a folder (the "mailbox").

    `exempt_file`, if it exists, lists the CVR and CPR numbers exempt from digital post, one
    per line; blank lines and lines starting with # are ignored. It is read at every send,
    so an edit takes effect without a restart.
    """

    def __init__(self, folder: Path, exempt_file: Path | None = None) -> None:
        self.folder = folder
        self.exempt_file = exempt_file

    def exempt(self) -> frozenset[str]:
        if self.exempt_file is None or not self.exempt_file.is_file():
            return frozenset()
        lines = self.exempt_file.read_text(encoding="utf-8").splitlines()
        return frozenset(normalise_id(line) for line in lines if line.strip() and not line.lstrip().startswith("#"))

    def is_exempt(self, id_type: str, number: str) -> bool:
        return normalise_id(number) in self.exempt()

    def send(self, message: PostMessage) -> str:
        _check_reachable(message.recipient, self.exempt())
        self.folder.mkdir(parents=True, exist_ok=True)
        # Colons in message ids are not allowed in file names on every system.
        path = self.folder / f"{message.message_id.replace(':', '_')}.json"
        receipt = f"fake-{message.message_id}"
        if path.exists():
            return receipt
        # A temporary name of its own, so that two workers sending one id never write into one file.
        temporary = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.tmp")
        temporary.write_text(json.dumps(message.as_memo(), ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(temporary, path)
        return receipt


class MemoryDigitalPost:
    """Fake digital post for tests: keeps delivered messages in memory and can fail on demand.

    `exempt` contains the CVR and CPR numbers exempt from digital post. `sends` counts the calls
    per message id, so a test can tell a message sent twice from one sent once.
    """

    def __init__(self, exempt: Iterable[str] = ()) -> None:
        self.delivered: dict[str, PostMessage] = {}
        self.calls = 0
        self.sends: dict[str, int] = {}
        self.failures_left = 0
        self.exempt = {normalise_id(number) for number in exempt}
        self._lock = threading.Lock()

    def is_exempt(self, id_type: str, number: str) -> bool:
        return normalise_id(number) in self.exempt

    def send(self, message: PostMessage) -> str:
        with self._lock:
            self.calls += 1
            self.sends[message.message_id] = self.sends.get(message.message_id, 0) + 1
            _check_reachable(message.recipient, self.exempt)
            if self.failures_left > 0:
                self.failures_left -= 1
                raise DeliveryError("simulated outage of digital post")
            self.delivered.setdefault(message.message_id, message)
        return f"memory-{message.message_id}"

    def messages(self) -> list[dict[str, object]]:
        return [asdict(message) for message in self.delivered.values()]
