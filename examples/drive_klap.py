#!/usr/bin/env python3
"""Run KLAP end to end over HTTP: a permit, the scheme case, the yearly requests in bulk, a report.

    python examples/drive_klap.py examples/klap/klap-tilladelser.csv

The script plays the demo users whose tokens `sagsflow token demo` writes to
var/demo-tokens.env:

1. The caseworker opens the scheme case (ordningssag) of the KLAP permits and imports the
   permits issued before Sagsflow from the CSV file.
2. A harbour applies for a new permit. The caseworker handles it, an approver approves
   it (four eyes), the dumping site's capacity is allocated, and the permit joins the
   scheme case.
3. The caseworker starts the year's bulk run: one request case and one letter with a
   report link for every active permit. A second run for the same year creates nothing.
4. One permit holder opens the link in its letter, which the script reads from the
   digital post folder as e-Boks would show it, and files the annual report. A second
   report through the same link is rejected.
5. The script prints the scheme's overview and saves its CSV and XLSX exports.

It needs only the standard library and uses the HTTP client of drive_cites.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drive_cites import (
    DEFAULT_TOKENS,
    DEFAULT_URL,
    MESSAGES,
    POLL_INTERVAL_SECONDS,
    REPOSITORY,
    REQUEST_TIMEOUT_SECONDS,
    Client,
    DriverError,
    Messages,
)
from drive_natura2000 import read_tokens

DEFAULT_POST = REPOSITORY / "var" / "digital-post"
REPORT_LINK = re.compile(r"/report-replies/([A-Za-z0-9_\-]{20,})")

MESSAGES.update(
    {
        "scheme_opened": (
            "Ordningssag {journal_number} oprettet: {title}.",
            "Scheme case {journal_number} opened: {title}.",
        ),
        "imported": (
            "{imported} tilladelser fra før Sagsflow er indlæst; ordningen har nu {members} aktive medlemmer.",
            "{imported} permits from before Sagsflow imported; the scheme now has {members} active members.",
        ),
        "permit": (
            "Klaptilladelse {journal_number} givet: {volume} m³ på {site}; pladsen har {left} m³ tilbage.",
            "KLAP permit {journal_number} granted: {volume} m³ at {site}; the site has {left} m³ left.",
        ),
        "bulk": (
            "Årsindberetning {period}: {created} anmodninger og breve oprettet på {seconds:.1f} s "
            "({existing} fandtes).",
            "Annual report {period}: {created} requests and letters created in {seconds:.1f} s ({existing} existed).",
        ),
        "rerun": (
            "Kørt igen: {created} nye, {existing} fandtes allerede.",
            "Run again: {created} new, {existing} already existed.",
        ),
        "reported": (
            "{holder} har indberettet {volume} m³ på sag {journal_number}; kvitteringsbrevet er sendt.",
            "{holder} reported {volume} m³ on case {journal_number}; the receipt letter has been sent.",
        ),
        "second_report": (
            "Anden indberetning med samme link afvist: {reason}",
            "A second report by the same link rejected: {reason}",
        ),
        "overview": (
            "Overblik {period}: {requests} anmodninger, {replied} svar, {missing} mangler.",
            "Overview {period}: {requests} requests, {replied} replies, {missing} missing.",
        ),
        "not_member": (
            "Fejl: tilladelsen {journal_number} er ikke optaget i ordningssagen.",
            "Error: the permit {journal_number} did not join the scheme case.",
        ),
        "exported": ("Eksporteret til {path}.", "Exported to {path}."),
        "no_letter": (
            "Fejl: ingen anmodning med et link fundet i {folder} efter {seconds:g} sekunder. Kører serveren med "
            "samme SAGSFLOW_DIGITAL_POST_DIR?",
            "Error: no request with a link found in {folder} after {seconds:g} seconds. Does the server use the "
            "same SAGSFLOW_DIGITAL_POST_DIR?",
        ),
    }
)


def post_bytes(client: Client, path: str, token: str, content: bytes, media_type: str) -> Any:
    """POST a file body (CSV) and return the decoded JSON response, with the same errors as `Client.request`."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": media_type,
        "Accept": "application/json",
        "Accept-Language": client.language,
    }
    request = urllib.request.Request(client.url + path, data=content, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise client._http_error("POST", path, error.code, error.read()) from None
    except OSError as error:
        raise DriverError(client.messages.text("unreachable", url=client.url, reason=error)) from None


def download(client: Client, path: str, token: str, target: Path) -> None:
    request = urllib.request.Request(  # noqa: S310
        client.url + path, headers={"Authorization": f"Bearer {token}"}, method="GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310
            target.write_bytes(response.read())
    except urllib.error.HTTPError as error:
        raise client._http_error("GET", path, error.code, error.read()) from None


def open_scheme(client: Client, token: str) -> dict[str, Any]:
    scheme: dict[str, Any] = client.request(
        "POST",
        "/cases",
        token,
        {"process": "klap-ordningssag", "data": {"scheme_name": "Klaptilladelser (KLAP)"}},
    )
    client.messages.say("scheme_opened", journal_number=scheme["journal_number"], title=scheme["title"])
    return scheme


def grant_permit(client: Client, tokens: dict[str, str]) -> dict[str, Any]:
    """Apply for a permit as the applicant and take it to a granted decision."""
    caseworker = tokens["caseworker"]
    start = date.today() + timedelta(days=30)
    application = {
        "applicant_name": "Rødvig Havn og Marina ApS",
        "applicant_cvr": "10150817",
        "applicant_address": "Havnevej 2",
        "applicant_postcode": "4673",
        "applicant_city": "Rødvig Stevns",
        "applicant_email": "havnefoged@example.dk",
        "harbour": "AAR",
        "dumping_site": "K_101",
        "volume_applied_m3": 12000,
        "dredging_area": "Yderhavnen og indsejlingen uddybes fra 4,0 til 4,5 m, i alt 0,8 ha.",
        "sediment_analysis_reference": "Analyserapport 27-0112",
        "contamination_class": "below_lower",
        "period_start": start.isoformat(),
        "period_end": (start + timedelta(days=4 * 365)).isoformat(),
    }
    case: dict[str, Any] = client.request(
        "POST", "/cases", tokens["applicant"], {"process": "klap-tilladelse", "data": application}
    )
    case = client.request("GET", f"/cases/{case['id']}", caseworker)
    case = client.complete(caseworker, case, "completeness_check", {"application_complete": True})
    case = client.complete(
        caseworker,
        case,
        "fact_assessment",
        {"assessment_note": "Sedimentet ligger under nedre aktionsniveau.", "consultation_required": False},
    )
    case = client.complete(
        caseworker,
        case,
        "draft_decision",
        {
            "decision_outcome": "granted",
            "granted_volume_m3": 12000,
            "decision_text": "Miljøstyrelsen giver tilladelse til klapning af 12.000 m³ havbundsmateriale.",
            "statement_of_reasons": "Materialet ligger under nedre aktionsniveau, og klappladsen har plads nok.",
            "conditions": "Klapning må kun ske fra 1. oktober til 31. marts.",
        },
    )
    case = client.approve(tokens["approver"], case, "decision_approval")
    data = case["data"]
    client.messages.say(
        "permit",
        journal_number=case["journal_number"],
        volume=data["granted_volume_m3"],
        site=data["dumping_site"],
        left=data.get("site_remaining_m3", "?"),
    )
    return case


def members_of(client: Client, token: str, scheme: dict[str, Any]) -> list[dict[str, Any]]:
    """List every active member of the scheme, page by page."""
    members: list[dict[str, Any]] = []
    while True:
        page = client.request("GET", f"/schemes/{scheme['id']}/members?limit=500&offset={len(members)}", token)
        members.extend(page["items"])
        if not page["items"] or len(members) >= page["total"]:
            return members


def find_report_token(folder: Path, journal_numbers: set[str], wait: float, messages: Messages) -> tuple[str, str]:
    """Find a request letter in the digital post folder and return its case reference and link token."""
    deadline = time.monotonic() + wait
    while True:
        for path in sorted(folder.glob("*.json")):
            try:
                message = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            text = json.dumps(message, ensure_ascii=False)
            link = REPORT_LINK.search(text)
            reference = next((number for number in journal_numbers if number in text), None)
            if link and reference:
                return reference, link.group(1)
        if time.monotonic() >= deadline:
            raise DriverError(messages.text("no_letter", folder=folder, seconds=wait))
        time.sleep(POLL_INTERVAL_SECONDS)


def drive(
    client: Client, tokens: dict[str, str], permits: Path, post_folder: Path, output: Path, wait: float, period: str
) -> None:
    messages = client.messages
    caseworker = tokens["caseworker"]
    scheme = open_scheme(client, caseworker)
    imported = post_bytes(
        client, f"/schemes/{scheme['id']}/members/import", caseworker, permits.read_bytes(), "text/csv"
    )
    permit = grant_permit(client, tokens)
    members = client.request("GET", f"/schemes/{scheme['id']}/members?limit=1", caseworker)
    messages.say("imported", imported=imported["added"], members=members["total"])
    if permit["journal_number"] not in {item["case"] for item in members_of(client, caseworker, scheme)}:
        raise DriverError(messages.text("not_member", journal_number=permit["journal_number"]))

    started = time.monotonic()
    run = client.request("POST", f"/schemes/{scheme['id']}/requests", caseworker, {"period": period})
    messages.say(
        "bulk",
        period=period,
        created=run["created"],
        existing=run["existing"],
        seconds=time.monotonic() - started,
    )
    again = client.request("POST", f"/schemes/{scheme['id']}/requests", caseworker, {"period": period})
    messages.say("rerun", created=again["created"], existing=again["existing"])

    listed = client.request("GET", f"/schemes/{scheme['id']}/overview?period={period}&limit=500", caseworker)
    journal_numbers = {row["journal_number"] for row in listed["requests"]["items"]}
    reference, token = find_report_token(post_folder, journal_numbers, wait, messages)
    link = client.request("GET", f"/report-replies/{token}", caseworker)
    report = {
        "dumped_volume_m3": 4200,
        "dumping_periods": "12.-19. oktober og 2.-6. november",
        "site_used": "K_101",
        "sediment_references": "Analyserapport 26-0931",
    }
    client.request("POST", f"/report-replies/{token}", caseworker, {"data": report})
    messages.say("reported", holder=link["party"], volume=report["dumped_volume_m3"], journal_number=reference)
    try:
        client.request("POST", f"/report-replies/{token}", caseworker, {"data": report})
    except DriverError as rejected:
        messages.say("second_report", reason=str(rejected).splitlines()[0])

    overview = client.request("GET", f"/schemes/{scheme['id']}/overview", caseworker)
    counts = next(row for row in overview["periods"] if row["period"] == period)
    messages.say(
        "overview", period=period, requests=counts["requests"], replied=counts["replies"], missing=counts["missing"]
    )
    output.mkdir(parents=True, exist_ok=True)
    for extension in ("csv", "xlsx"):
        target = output / f"klap-{period}.{extension}"
        download(client, f"/schemes/{scheme['id']}/export?period={period}&format={extension}", caseworker, target)
        messages.say("exported", path=target)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run KLAP end to end over HTTP.")
    parser.add_argument(
        "permits", type=Path, help="CSV of permits from before Sagsflow, e.g. examples/klap/klap-tilladelser.csv"
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"base URL of the Sagsflow API (default: {DEFAULT_URL})")
    parser.add_argument("--tokens", type=Path, default=DEFAULT_TOKENS, help="file with the demo tokens")
    parser.add_argument("--post", type=Path, default=DEFAULT_POST, help="the server's digital post folder")
    parser.add_argument("--output", type=Path, default=REPOSITORY / "var" / "exports", help="folder for the exports")
    parser.add_argument("--lang", choices=("da", "en"), default="da", help="language of the output")
    parser.add_argument(
        "--period", default=str(date.today().year), help="the year the requests cover (default: this year)"
    )
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the letters (default: 30)")
    arguments = parser.parse_args(argv)
    if not arguments.url.startswith(("http://", "https://")):
        parser.error(f"--url must start with http:// or https://, not {arguments.url!r}")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    messages = Messages(arguments.lang)
    try:
        tokens = read_tokens(arguments.tokens, messages)
        client = Client(arguments.url, arguments.lang, messages)
        drive(client, tokens, arguments.permits, arguments.post, arguments.output, arguments.wait, arguments.period)
    except DriverError as error:
        print(error, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
