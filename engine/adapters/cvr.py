"""Danish company register (CVR) adapter and its fake for development and tests.

The fake reads ``data/cvr_fake.csv``, a list of fictional companies whose CVR numbers
pass the modulus-11 check. See ``data/README.md``.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

from stdnum.dk import cvr as stdnum_cvr

COMPANY_STATUSES = frozenset({"NORMAL", "OPHØRT"})
CSV_COLUMNS = ("cvr", "name", "address", "postcode", "city", "status", "industry_code")

_EIGHT_DIGITS = re.compile(r"[0-9]{8}")
_POSTCODE = re.compile(r"[0-9]{4}")
_INDUSTRY_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class Company:
    """A company as registered in CVR."""

    cvr: str
    name: str
    address: str
    postcode: str
    city: str
    status: str  # "NORMAL" (active) or "OPHØRT" (ceased)
    industry_code: str  # six-digit Danish industry code (DB07)


class CompanyRegister(Protocol):
    """Adapter interface for the Danish company register."""

    def lookup(self, cvr: str) -> Company | None: ...


def is_valid_cvr(value: str) -> bool:
    """Return True if ``value`` is exactly eight ASCII digits that pass the CVR modulus-11 check.

    Unlike ``stdnum.dk.cvr.is_valid``, this rejects spaces, separators and a "DK" prefix,
    so callers must store the bare number.
    """
    if _EIGHT_DIGITS.fullmatch(value) is None:
        return False
    return bool(stdnum_cvr.is_valid(value))


class FakeCompanyRegister:
    """CompanyRegister backed by the fictional companies in engine/adapters/data/cvr_fake.csv."""

    def __init__(self, path: Path | None = None) -> None:
        """Load and validate the companies at ``path``, or the shipped file when None.

        Raises ValueError naming the file and line of the first invalid row.
        """
        if path is None:
            source = "cvr_fake.csv"
            text = (resources.files("engine.adapters") / "data" / "cvr_fake.csv").read_text(encoding="utf-8-sig")
        else:
            source = str(path)
            text = path.read_text(encoding="utf-8-sig")

        self._companies = _parse_companies(text, source)
        self._by_cvr = {company.cvr: company for company in self._companies}

    def __len__(self) -> int:
        return len(self._companies)

    def companies(self) -> list[Company]:
        """Return all companies in file order."""
        return list(self._companies)

    def lookup(self, cvr: str) -> Company | None:
        """Return the company with this exact CVR number, or None when it is unknown."""
        return self._by_cvr.get(cvr)


def _parse_companies(text: str, source: str) -> list[Company]:
    """Parse and validate the fake register CSV.

    Raises ValueError naming ``source`` and the line of the first invalid row.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(column.strip() for column in header) != CSV_COLUMNS:
        raise ValueError(f"{source}, line 1: invalid header {header!r}. Expected {','.join(CSV_COLUMNS)}")

    companies: list[Company] = []
    first_line_by_cvr: dict[str, int] = {}
    for fields in reader:
        line = reader.line_num
        if not fields:
            continue
        company = _parse_row(fields, f"{source}, line {line}")
        if company.cvr in first_line_by_cvr:
            raise ValueError(
                f"{source}, line {line}: duplicate CVR number {company.cvr}, "
                f"first given on line {first_line_by_cvr[company.cvr]}"
            )
        first_line_by_cvr[company.cvr] = line
        companies.append(company)
    return companies


def _parse_row(fields: list[str], location: str) -> Company:
    """Build a Company from one CSV row, raising ValueError prefixed with ``location``."""
    if len(fields) != len(CSV_COLUMNS):
        raise ValueError(f"{location}: expected {len(CSV_COLUMNS)} fields, got {len(fields)}")
    values = dict(zip(CSV_COLUMNS, (field.strip() for field in fields), strict=True))

    if not is_valid_cvr(values["cvr"]):
        raise ValueError(
            f"{location}: invalid CVR number {values['cvr']!r}. Expected 8 digits that pass the modulus-11 check"
        )
    for column in ("name", "address", "city"):
        if not values[column]:
            raise ValueError(f"{location}: {column} is empty")
    if _POSTCODE.fullmatch(values["postcode"]) is None:
        raise ValueError(f"{location}: invalid postcode {values['postcode']!r}. Expected 4 digits")
    if values["status"] not in COMPANY_STATUSES:
        raise ValueError(f"{location}: invalid status {values['status']!r}. Expected NORMAL or OPHØRT")
    if _INDUSTRY_CODE.fullmatch(values["industry_code"]) is None:
        raise ValueError(f"{location}: invalid industry_code {values['industry_code']!r}. Expected 6 digits")

    return Company(
        cvr=values["cvr"],
        name=values["name"],
        address=values["address"],
        postcode=values["postcode"],
        city=values["city"],
        status=values["status"],
        industry_code=values["industry_code"],
    )
