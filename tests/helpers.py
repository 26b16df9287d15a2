"""Test helpers shared by several test modules: actors, tokens, the CITES examples and a small office."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.auth import Actor
from engine.definitions.loader import LoadedDefinitions, load_definitions

REPOSITORY = Path(__file__).resolve().parent.parent
# The processes of the three first-of-a-kind cases (CITES, Natura 2000, KLAP), which the
# feature tests drive in detail.
CITES_IMPORT = "processes/afgoerelse/cites-import.yaml"
FIRST_OF_A_KIND = (
    CITES_IMPORT,
    "processes/afgoerelse/klap-tilladelse.yaml",
    "processes/tilskud/natura2000-sammenhaengende-arealer.yaml",
    "processes/puljesag/natura2000-puljesag.yaml",
    "processes/tilsyn/klap-aarligt-tilsyn.yaml",
    "processes/ordningssag/klap-ordningssag.yaml",
)
EXAMPLES = REPOSITORY / "examples" / "cites"

# The staff work in the CITES team, like the users of the `tokens` fixture.
TEAM = "cites"
CASEWORKER = Actor("karen", frozenset({"caseworker"}), (TEAM,))
CASEWORKER_2 = Actor("mads", frozenset({"caseworker"}), (TEAM,))
APPROVER = Actor("bo", frozenset({"approver"}), (TEAM,))
APPROVER_2 = Actor("lise", frozenset({"approver"}), (TEAM,))
APPLICANT = Actor("kragelund", frozenset({"applicant"}))
# Manages users; admin sees every team's cases by default.
ADMIN = Actor("test-admin", frozenset({"admin"}))


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


# A small office with two processes of one skeleton. `wildlife-permit` belongs to the team
# `vildt`. `general-request` names no team, so its cases get the submitter's first team.
OFFICE_SKELETON = """
skeleton: office
title: {da: Kontor, en: Office}
roles:
  applicant: {label: {da: Ansøger, en: Applicant}}
  caseworker: {label: {da: Sagsbehandler, en: Caseworker}}
  approver: {label: {da: Godkender, en: Approver}}
intake_roles: [applicant, caseworker]
fields:
  reference: {type: text, label: {da: Reference, en: Reference}, required: true}
  note: {type: text, source: caseworker, label: {da: Note, en: Note}}
phases:
  - id: work
    label: {da: Arbejde, en: Work}
    steps:
      - {id: prepare, kind: task, role: caseworker, label: {da: Forbered, en: Prepare}, form: [{field: note}]}
    next: [{to: approval}]
  - id: approval
    label: {da: Godkendelse, en: Approval}
    steps:
      - {id: sign_off, kind: approval, role: approver, approves: prepare, eyes: 4, label: {da: Godkend, en: Approve}}
    next:
      - {to: done, when: "outcome.sign_off == 'approved'"}
      - {to: work}
  - id: done
    label: {da: Færdig, en: Done}
    final: true
"""

OFFICE_PROCESSES = {
    "wildlife-permit": """
process: wildlife-permit
extends: office
title: {da: Vildttilladelse, en: Wildlife permit}
legal_basis: [{title: {da: Testlov, en: Test act}, reference: § 1}]
classification: "01.02.03"
team: vildt
duplicates: {key: [reference]}
""",
    "general-request": """
process: general-request
extends: office
title: {da: Henvendelse, en: General request}
legal_basis: [{title: {da: Testlov, en: Test act}, reference: § 2}]
classification: "01.02.04"
""",
}

# name, roles, teams
OFFICE_USERS: list[tuple[str, list[str], list[str]]] = [
    ("vera", ["caseworker"], ["vildt"]),
    ("alma", ["approver"], ["vildt"]),
    ("trude", ["caseworker", "approver"], ["vildt"]),
    ("carl", ["caseworker"], ["cites"]),
    ("bent", ["approver"], ["cites"]),
    ("frida", ["caseworker"], ["skov", "cites"]),
    ("per", ["caseworker"], []),
    ("stella", ["caseworker"], ["*"]),
    ("adam", ["admin"], []),
    ("anna", ["applicant"], []),
    ("otto", ["applicant"], []),
]


def load_office(root: Path) -> LoadedDefinitions:
    """Write the office's skeleton and processes under `root` and load them."""
    (root / "skeletons").mkdir(parents=True)
    (root / "processes" / "office").mkdir(parents=True)
    (root / "skeletons" / "office.yaml").write_text(OFFICE_SKELETON, encoding="utf-8")
    for name, text in OFFICE_PROCESSES.items():
        (root / "processes" / "office" / f"{name}.yaml").write_text(text, encoding="utf-8")
    loaded = load_definitions(root)
    assert not loaded.errors, [problem.format("en") for problem in loaded.errors]
    return loaded
