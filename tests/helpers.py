"""Test helpers shared by several test modules: actors, tokens and the CITES examples."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.auth import Actor

REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLES = REPOSITORY / "examples" / "cites"

CASEWORKER = Actor("karen", frozenset({"caseworker"}))
CASEWORKER_2 = Actor("mads", frozenset({"caseworker"}))
APPROVER = Actor("bo", frozenset({"approver"}))
APPROVER_2 = Actor("lise", frozenset({"approver"}))
APPLICANT = Actor("kragelund", frozenset({"applicant"}))


@dataclass
class Tokens:
    caseworker: str
    caseworker_2: str
    approver: str
    applicant: str
    other_applicant: str
    both: str  # a user who is caseworker and approver, to test four eyes over HTTP

    @staticmethod
    def header(token: str, language: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"}
        if language:
            headers["Accept-Language"] = language
        return headers


def example(name: str, variant: int | None = None) -> dict[str, Any]:
    """Return the example application whose file name starts with `name`, e.g. "01".

    With `variant`, the export permit number is made unique, so that several applications
    from the same example are not refused as duplicates of each other.
    """
    path = next(EXAMPLES.glob(f"{name}*.json"))
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if variant is not None:
        loaded["data"]["export_permit_number"] = f"{loaded['data'].get('export_permit_number', 'X')}-{variant}"
    return loaded
