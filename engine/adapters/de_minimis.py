"""The de minimis register: state aid an undertaking has received under the de minimis rules.

Commission Regulation (EU) 2023/2831 caps de minimis aid at EUR 300,000 per single
undertaking over any period of three years. In production the register is the central
one that Member States keep; here a fake reads fictional grants from
`data/de_minimis_fake.csv`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Protocol

DATA_FILE = Path(__file__).resolve().parent / "data" / "de_minimis_fake.csv"


@dataclass(frozen=True)
class AidRecord:
    cvr: str
    granted_on: date
    amount_eur: Decimal
    scheme: str


class DeMinimisRegister(Protocol):
    def aid_received(self, cvr: str, since: date) -> list[AidRecord]:
        """Return the de minimis aid granted to the undertaking on or after `since`."""
        ...


class FakeDeMinimisRegister:
    """DeMinimisRegister over fictional grants in a CSV file (cvr, granted_on, amount_eur, scheme)."""

    def __init__(self, path: Path = DATA_FILE) -> None:
        self._records: list[AidRecord] = []
        with path.open(encoding="utf-8", newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    self._records.append(
                        AidRecord(
                            row["cvr"], date.fromisoformat(row["granted_on"]), Decimal(row["amount_eur"]), row["scheme"]
                        )
                    )
                except (KeyError, ValueError, ArithmeticError) as error:
                    raise ValueError(f"{path}:{line}: invalid de minimis record: {error}") from None

    def aid_received(self, cvr: str, since: date) -> list[AidRecord]:
        return [record for record in self._records if record.cvr == cvr and record.granted_on >= since]
