#!/usr/bin/env python3
"""Run a Natura 2000 application round over HTTP: pool case, applications, ranking, commitments, a payout.

    python examples/drive_natura2000.py examples/natura2000/round-2027.json

The script plays the demo users whose tokens `sagsflow token demo` writes to
var/demo-tokens.env:

1. The caseworker opens the round's pool case (puljesag) with a budget.
2. The applicant submits every application of the round file. The one with a
   self-intersecting area is refused at once; the script prints the server's reason.
3. The caseworker assesses each application: eligible when at least half of the drawn
   area lies inside its Natura 2000 site.
4. The caseworker closes the round before its deadline (with a reason, since this is a
   demonstration) and ranks it: the pool reserves the amounts of the applications with
   most points that fit the budget.
5. Each application gets a draft decision, a commitment within the budget and a refusal
   otherwise, which an approver approves (four eyes).
6. The first commitment is paid out: the caseworker records and checks the payout
   request, and two approvers sign it off (six eyes). The payment goes to the
   applicant's NemKonto through the outbox and the finance system.
7. The script prints the pool's balances and waits until the pool reconciles.

Like drive_cites.py, beside which it lives and whose HTTP client it uses, it needs only
the standard library. Any HTTP error prints the server's message and ends the script
with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drive_cites import (
    DEFAULT_TOKENS,
    DEFAULT_URL,
    MESSAGES,
    POLL_INTERVAL_SECONDS,
    Client,
    DriverError,
    Messages,
)

TOKEN_VARIABLES = {
    "applicant": "SAGSFLOW_APPLICANT_TOKEN",
    "caseworker": "SAGSFLOW_CASEWORKER_TOKEN",
    "approver": "SAGSFLOW_APPROVER_TOKEN",
    "approver_2": "SAGSFLOW_APPROVER_2_TOKEN",
}
DEFAULT_BUDGET = "1500000.00"
# An application is eligible when at least this share of its drawn area lies inside its site.
ELIGIBLE_SHARE = Decimal(50)

MESSAGES.update(
    {
        "pool_opened": (
            "Puljesag {journal_number} oprettet: {title}, budget {budget} kr.",
            "Pool case {journal_number} opened: {title}, budget DKK {budget}.",
        ),
        "application_submitted": (
            "  {reference}: sag {journal_number}, {share} % af arealet i {site}.",
            "  {reference}: case {journal_number}, {share} % of the area in {site}.",
        ),
        "application_refused": (
            "  {reference}: afvist ved modtagelsen: {reason}",
            "  {reference}: refused on receipt: {reason}",
        ),
        "assessed": (
            "  {journal_number}: {points} point, {verdict}.",
            "  {journal_number}: {points} points, {verdict}.",
        ),
        "ranked": ("Runden er lukket og prioriteret: {summary}", "The round is closed and ranked: {summary}"),
        "decided": ("  {journal_number}: {outcome} godkendt.", "  {journal_number}: {outcome} approved."),
        "paid": (
            "Udbetaling på {amount} kr. i sag {journal_number} er godkendt af to godkendere og sendt til NemKonto.",
            "Payout of DKK {amount} in case {journal_number} approved by two approvers and sent to the NemKonto.",
        ),
        "balances": (
            "Puljen: til rådighed {available}, reserveret {reserved}, tilsagt {committed}, udbetalt {paid}",
            "The pool: available {available}, reserved {reserved}, committed {committed}, paid {paid}",
        ),
        "reconciled": (
            "Puljen er afstemt: {cases} sager og {transactions} transaktioner stemmer med økonomisystemet.",
            "The pool reconciles: {cases} cases and {transactions} transactions agree with the finance system.",
        ),
        "not_reconciled": (
            "Fejl: puljen er ikke afstemt efter {seconds:g} sekunder: {problems}",
            "Error: the pool does not reconcile after {seconds:g} seconds: {problems}",
        ),
        "round_unreadable": (
            "Fejl: rundefilen {path} kan ikke læses ({reason}); se examples/natura2000/round-2027.json.",
            "Error: the round file {path} cannot be read ({reason}); see examples/natura2000/round-2027.json.",
        ),
        "round_tokens_missing": (
            "Fejl: {path} mangler {variable}. Kør 'sagsflow token demo' igen.",
            "Error: {path} lacks {variable}. Run 'sagsflow token demo' again.",
        ),
    }
)


def read_tokens(path: Path, messages: Messages) -> dict[str, str]:
    """Read the four demo tokens this script needs from the KEY=value file of `sagsflow token demo`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DriverError(messages.text("tokens_unreadable", path=path, reason=error)) from None
    variables = {}
    for line in text.splitlines():
        name, separator, value = line.strip().removeprefix("export ").partition("=")
        if separator:
            variables[name.strip()] = value.strip().strip("'\"")
    tokens = {}
    for role, variable in TOKEN_VARIABLES.items():
        if not variables.get(variable):
            raise DriverError(messages.text("round_tokens_missing", path=path, variable=variable))
        tokens[role] = variables[variable]
    return tokens


def read_round(path: Path, messages: Messages) -> dict[str, Any]:
    """Read a round file: the scheme, the round, the process and its applications."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DriverError(messages.text("round_unreadable", path=path, reason=error)) from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("applications"), list) or "process" not in loaded:
        raise DriverError(messages.text("round_unreadable", path=path, reason="process/applications"))
    return loaded


def formatted_number(number: Any, language: str, decimals: int = 2) -> str:
    """Format a number for a person: 1.500.000,00 in Danish, 1,500,000.00 in English."""
    text = f"{Decimal(str(number)):,.{decimals}f}"
    return text if language == "en" else text.replace(",", "_").replace(".", ",").replace("_", ".")


def kroner(ore: int) -> str:
    return f"{Decimal(ore) / 100:.2f}"


def open_pool(client: Client, token: str, round_file: dict[str, Any], budget: str) -> dict[str, Any]:
    today = date.today()
    pool: dict[str, Any] = client.request(
        "POST",
        "/cases",
        token,
        {
            "process": "natura2000-puljesag",
            "data": {
                "round_name": f"{round_file['scheme']}, runde {round_file['round']}",
                "budget": budget,
                # From yesterday: the server counts days in Copenhagen, which may be a day ahead of this machine.
                "applications_open": (today - timedelta(days=1)).isoformat(),
                "applications_close": (today + timedelta(days=30)).isoformat(),
                "finance_account": "22.11.45.10",
            },
        },
    )
    client.messages.say(
        "pool_opened",
        journal_number=pool["journal_number"],
        title=pool["title"],
        budget=formatted_number(budget, client.language),
    )
    return pool


def submit_all(client: Client, token: str, round_file: dict[str, Any]) -> list[dict[str, Any]]:
    """Submit every application; print the reason for those the server refuses."""
    cases = []
    for entry in round_file["applications"]:
        body = {"process": round_file["process"], "data": entry["data"], "language": entry.get("language", "da")}
        try:
            case = client.request("POST", "/cases", token, body)
        except DriverError as refused:
            reason = str(refused).splitlines()[-1].strip()
            client.messages.say("application_refused", reference=entry["reference"], reason=reason)
            continue
        cases.append(case)
    return cases


def assess(client: Client, token: str, case: dict[str, Any], language: str) -> dict[str, Any]:
    case = client.complete(token, case, "completeness_check", {"application_complete": True})
    share = Decimal(str(case["data"].get("area_share_in_site") or 0))
    eligible = share >= ELIGIBLE_SHARE
    if language == "en":
        note = f"{share} % of the area lies inside the Natura 2000 site; the requirement is {ELIGIBLE_SHARE} %."
    else:
        note = f"{share} % af arealet ligger i Natura 2000-området; kravet er {ELIGIBLE_SHARE} %."
    return client.complete(token, case, "eligibility", {"eligible": eligible, "eligibility_note": note})


def draft(case: dict[str, Any], language: str) -> dict[str, Any]:
    data = case["data"]
    within = data.get("eligible") and data.get("ranking_outcome") == "within_budget"
    if within:
        reasons = {
            "da": "Arealet ligger i Natura 2000-området, projektet samler det til én driftsenhed, "
            "og ansøgningen er prioriteret inden for puljens budget.",
            "en": "The area lies inside the Natura 2000 site, the project joins it into one managed unit, "
            "and the application is ranked within the pool's budget.",
        }[language]
        return {
            "grant_outcome": "commitment",
            "committed_amount": kroner(int(data["requested_amount"])),
            "statement_of_reasons": reasons,
            "land_registration_required": False,
        }
    reasons = {
        "da": "Ansøgningen opfylder ikke betingelserne, eller den er prioriteret uden for puljens budget.",
        "en": "The application does not meet the conditions, or it is ranked outside the pool's budget.",
    }[language]
    return {"grant_outcome": "refusal", "statement_of_reasons": reasons}


def pay_out(client: Client, tokens: dict[str, str], case: dict[str, Any]) -> dict[str, Any]:
    committed = int(case["data"]["committed_amount"])
    amount = kroner(committed)
    case = client.complete(
        tokens["caseworker"],
        case,
        "payout_application",
        {"payout_amount": amount, "payout_documentation": "Fakturaer for hegn, vandforsyning og rydning."},
    )
    case = client.complete(tokens["caseworker"], case, "payout_check", {"payout_approved_amount": amount})
    # Six eyes: two approvers, neither of them the caseworker who checked the request.
    case = client.approve(tokens["approver"], case, "payout_signoff")
    case = client.approve(tokens["approver_2"], case, "payout_signoff")
    client.messages.say("paid", amount=formatted_number(amount, client.language), journal_number=case["journal_number"])
    return client.complete(tokens["caseworker"], case, "closing_check", {"closing_note": "Projektet er gennemført."})


def wait_for_reconciliation(client: Client, token: str, pool: dict[str, Any], wait: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        report: dict[str, Any] = client.request("GET", f"/cases/{pool['id']}/pool/reconciliation", token)
        if report["ok"] or time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL_SECONDS)
    if not report["ok"]:
        problems = [problem for row in (*report["cases"], *report["transactions"]) for problem in row["problems"]]
        raise DriverError(client.messages.text("not_reconciled", seconds=wait, problems="; ".join(problems[:5]) or "?"))
    return report


def drive(client: Client, tokens: dict[str, str], round_file: dict[str, Any], budget: str, wait: float) -> None:
    messages = client.messages
    language = client.language
    caseworker = tokens["caseworker"]
    pool = open_pool(client, caseworker, round_file, budget)

    cases = []
    for submitted in submit_all(client, tokens["applicant"], round_file):
        case = client.request("GET", f"/cases/{submitted['id']}", caseworker)
        messages.say(
            "application_submitted",
            reference=case["title"],
            journal_number=case["journal_number"],
            share=formatted_number(case["data"].get("area_share_in_site") or 0, language),
            site=case["data"].get("natura2000_site"),
        )
        cases.append(case)

    for index, case in enumerate(cases):
        cases[index] = assess(client, caseworker, case, language)
        verdict = {"da": "opfylder betingelserne", "en": "meets the conditions"}[language]
        if not cases[index]["data"].get("eligible"):
            verdict = {"da": "opfylder ikke betingelserne", "en": "does not meet the conditions"}[language]
        messages.say(
            "assessed", journal_number=case["journal_number"], points=cases[index]["data"].get("score"), verdict=verdict
        )

    pool = client.request("GET", f"/cases/{pool['id']}", caseworker)
    reason = {"da": "Demonstration: runden lukkes før fristen.", "en": "Demonstration: the round closes early."}
    pool = client.complete(caseworker, pool, "close_applications", {"early_close_reason": reason[language]})
    pool = client.complete(caseworker, pool, "confirm_ranking", {"ranking_note": "Prioriteret efter point."})
    messages.say("ranked", summary=pool["data"].get("ranking_summary", ""))

    committed = []
    for case in cases:
        current = client.request("GET", f"/cases/{case['id']}", caseworker)
        current = client.complete(caseworker, current, "grant_draft", draft(current, language))
        current = client.approve(tokens["approver"], current, "decision_approval")
        outcome = current["data"]["grant_outcome"]
        shown = {
            "commitment": {"da": "Tilsagn", "en": "Commitment"},
            "refusal": {"da": "Afslag", "en": "Refusal"},
        }[outcome][language]
        messages.say("decided", journal_number=current["journal_number"], outcome=shown)
        if outcome == "commitment":
            committed.append(current)
        else:
            client.complete(caseworker, current, "closing_check", {"closing_note": "Afslag sendt."})

    if committed:
        pay_out(client, tokens, committed[0])

    overview = client.request("GET", f"/cases/{pool['id']}/pool", caseworker)
    messages.say("balances", **overview["shown"])
    report = wait_for_reconciliation(client, caseworker, pool, wait)
    messages.say("reconciled", cases=len(report["cases"]), transactions=len(report["transactions"]))


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a Natura 2000 application round over HTTP.")
    parser.add_argument("round", type=Path, help="round file, e.g. examples/natura2000/round-2027.json")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"base URL of the Sagsflow API (default: {DEFAULT_URL})")
    parser.add_argument("--tokens", type=Path, default=DEFAULT_TOKENS, help="file with the demo tokens")
    parser.add_argument(
        "--budget", default=DEFAULT_BUDGET, help=f"the pool's budget in kroner (default: {DEFAULT_BUDGET})"
    )
    parser.add_argument("--lang", choices=("da", "en"), default="da", help="language of the output")
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the outbox before reconciling (default: 30)"
    )
    arguments = parser.parse_args(argv)
    if not arguments.url.startswith(("http://", "https://")):
        parser.error(f"--url must start with http:// or https://, not {arguments.url!r}")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    messages = Messages(arguments.lang)
    try:
        tokens = read_tokens(arguments.tokens, messages)
        round_file = read_round(arguments.round, messages)
        client = Client(arguments.url, arguments.lang, messages)
        drive(client, tokens, round_file, arguments.budget, arguments.wait)
    except DriverError as error:
        print(error, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
