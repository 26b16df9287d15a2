"""Physical mail: letters printed and posted to recipients that digital post cannot reach.

The outbox uses this channel for recipients exempt from digital post and for recipients
without a CVR or CPR number. A print job carries the letter's plain-text body as filed. The
letter's header contains the recipient's name and address, placed for a window envelope.
Sending is idempotent on the message id, like digital post: a second job with the same id
prints nothing and returns the first receipt.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Protocol

from engine.adapters.digital_post import DeliveryError, PostMessage


def print_job(message: PostMessage) -> dict[str, object]:
    """Return the print job for a message as a JSON-ready dictionary."""
    return {
        "jobId": message.message_id,
        "created": message.created,
        "sender": {"id": message.sender.id, "idType": message.sender.id_type, "name": message.sender.name},
        "recipient": {
            "id": message.recipient.id,
            "idType": message.recipient.id_type,
            "name": message.recipient.name,
            "address": message.recipient.address,
            "postcode": message.recipient.postcode,
            "city": message.recipient.city,
        },
        "caseReference": message.case_reference,
        "title": message.main_document_title,
        "language": message.language,
        "text": message.main_document_text,
    }


def require_address(message: PostMessage) -> None:
    """Raise DeliveryError when the letter has no postal address, as a print service would reject it."""
    recipient = message.recipient
    if not (recipient.address and recipient.postcode and recipient.city):
        raise DeliveryError(f"no postal address for the recipient {recipient.name!r}; the letter cannot be posted")


class PhysicalMail(Protocol):
    def send(self, message: PostMessage) -> str:
        """Queue the letter for printing and return the receipt id; repeat calls with one id print once."""
        ...


class FolderPhysicalMail:
    """Fake print service that writes each print job as a JSON file into a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: PostMessage) -> str:
        require_address(message)
        self.folder.mkdir(parents=True, exist_ok=True)
        # Colons in message ids are not allowed in file names on every system.
        path = self.folder / f"{message.message_id.replace(':', '_')}.json"
        receipt = f"print-{message.message_id}"
        if path.exists():
            return receipt
        # A temporary name of its own, so that two workers sending one id never write into one file.
        temporary = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.tmp")
        temporary.write_text(json.dumps(print_job(message), ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(temporary, path)
        return receipt


class MemoryPhysicalMail:
    """Fake print service for tests: keeps print jobs in memory and can fail on demand."""

    def __init__(self) -> None:
        self.jobs: dict[str, PostMessage] = {}
        self.sends: dict[str, int] = {}
        self.failures_left = 0
        self._lock = threading.Lock()

    def send(self, message: PostMessage) -> str:
        with self._lock:
            self.sends[message.message_id] = self.sends.get(message.message_id, 0) + 1
            require_address(message)
            if self.failures_left > 0:
                self.failures_left -= 1
                raise DeliveryError("simulated outage of the print service")
            self.jobs.setdefault(message.message_id, message)
        return f"print-{message.message_id}"
