"""Digital post (e-Boks / Digital Post) adapter, with fakes for development and tests.

A message is shaped after the MeMo format that Danish digital post uses: a header with
the message id, a label (subject), sender and recipient with their id types (CVR or
CPR), the case reference and the journal classification, and a body with the main
document. Sending is idempotent on the message id: sending the same id twice delivers
once and returns the first receipt, so the outbox may retry safely.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Party:
    id_type: str  # "CVR" or "CPR"
    id: str
    name: str


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


class DigitalPost(Protocol):
    def send(self, message: PostMessage) -> str:
        """Deliver the message and return the receipt id; repeat calls with one id deliver once."""
        ...


class MailboxDigitalPost:
    """Fake digital post that writes each message as a JSON file into a folder (the "mailbox")."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: PostMessage) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        # Colons in message ids are not allowed in file names on every system.
        path = self.folder / f"{message.message_id.replace(':', '_')}.json"
        receipt = f"fake-{message.message_id}"
        if path.exists():
            return receipt
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(message.as_memo(), ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(temporary, path)
        return receipt


class MemoryDigitalPost:
    """Fake digital post for tests: keeps delivered messages in memory and can fail on demand."""

    def __init__(self) -> None:
        self.delivered: dict[str, PostMessage] = {}
        self.calls = 0
        self.failures_left = 0
        self._lock = threading.Lock()

    def send(self, message: PostMessage) -> str:
        with self._lock:
            self.calls += 1
            if self.failures_left > 0:
                self.failures_left -= 1
                raise DeliveryError("simulated outage of digital post")
            self.delivered.setdefault(message.message_id, message)
        return f"memory-{message.message_id}"

    def messages(self) -> list[dict[str, object]]:
        return [asdict(message) for message in self.delivered.values()]
