"""Helpers for the scheme case tests: a KLAP scheme case with members, and the reply tokens of its requests."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from engine.auth import Actor
from engine.runtime.schemes import Schemes
from engine.service import Sagsflow
from engine.storage.tables import Case, OutboxMessage

SCHEME_PROCESS = "klap-ordningssag"
REQUEST_PROCESS = "klap-aarligt-tilsyn"
TEAM = "klap"
CASEWORKER = Actor("sigrid", frozenset({"caseworker"}), (TEAM,))
OTHER_TEAM = Actor("karen", frozenset({"caseworker"}), ("cites",))
APPROVER = Actor("bo", frozenset({"approver"}), (TEAM,))
APPLICANT = Actor("havnen", frozenset({"applicant"}))
# The fields of a permit that the scheme's snapshot holds, as import columns.
COLUMNS = (
    "member_key",
    "applicant_name",
    "applicant_cvr",
    "applicant_address",
    "applicant_postcode",
    "applicant_city",
    "harbour",
    "harbour_name",
    "dumping_site",
    "dumping_site_name",
    "granted_volume_m3",
    "period_end",
)
REPORT = {
    "dumped_volume_m3": 12000,
    "dumping_periods": "3.-21. marts 2026",
    "site_used": "K_101 Aarhus Bugt",
    "sediment_references": "Analyserapport 2025-117 af 4. februar 2025",
}


def cvr_number(index: int) -> str:
    """Return a valid CVR number (modulus 11) for `index`; numbers for different indexes differ."""
    weights = (2, 7, 6, 5, 4, 3, 2)
    base = 3_000_000 + index * 7
    while True:
        digits = [int(digit) for digit in str(base)]
        check = -sum(digit * weight for digit, weight in zip(digits, weights, strict=True)) % 11
        if check < 10:
            return f"{base}{check}"
        base += 1


def permit_row(index: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "member_key": f"KLAP-2024-{index:05d}",
        "applicant_name": f"Havneselskab nr. {index} A/S",
        "applicant_cvr": cvr_number(index),
        "applicant_address": f"Havnevej {index}",
        "applicant_postcode": "8000",
        "applicant_city": "Aarhus C",
        "harbour": "AAR",
        "harbour_name": "Aarhus Havn",
        "dumping_site": "K_101",
        "dumping_site_name": "Aarhus Bugt",
        "granted_volume_m3": 10_000 + index,
        "period_end": "2029-06-30",
    }
    row.update(changes)
    return row


def permits_csv(rows: list[dict[str, Any]], delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


@dataclass
class Klap:
    """A deployed engine with an open KLAP scheme case."""

    service: Sagsflow
    schemes: Schemes
    scheme_id: int
    journal_number: str

    def add_members(self, count: int, start: int = 1) -> dict[str, Any]:
        rows = [permit_row(index) for index in range(start, start + count)]
        return self.schemes.import_members(CASEWORKER, self.scheme_id, permits_csv(rows), "csv")

    def request_cases(self) -> list[Case]:
        with self.service.database.read() as session:
            query = select(Case).where(Case.process_id == REQUEST_PROCESS).order_by(Case.journal_sequence)
            return list(session.scalars(query))

    def tokens(self) -> dict[int, str]:
        """Return the reply token of each request case, from its letter's outbox message."""
        with self.service.database.read() as session:
            messages = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
            return {
                message.case_id: message.payload["reply_token"]
                for message in messages
                if "reply_token" in message.payload
            }


def open_scheme(service: Sagsflow) -> Klap:
    scheme = service.submit(CASEWORKER, SCHEME_PROCESS, {"scheme_name": "KLAP-tilladelser"}, "da")
    return Klap(service, Schemes(service), scheme["id"], scheme["journal_number"])
