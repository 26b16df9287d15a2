#!/usr/bin/env python3
"""Drive one CITES import permit application over HTTP, from submission to a closed case.

    python examples/drive_cites.py examples/cites/01-kongepython.json

The script plays the three demo users whose tokens `sagsflow token demo` writes to
var/demo-tokens.env: the applicant submits the application, the caseworker handles the
checklist, and the approver approves the draft decision. It then waits for the outbox
to send the decision letter, prints the letter and closes the case.

It uses only the standard library, so any Python 3.11 runs it without the project's
virtualenv. Every write sends the case version from the server's last response, so the
server rejects the write with 409 Conflict if the case has changed since. An HTTP error
prints the server's message and ends the script with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TOKENS = REPOSITORY / "var" / "demo-tokens.env"
REQUEST_TIMEOUT_SECONDS = 30.0
POLL_INTERVAL_SECONDS = 0.2

# Environment variable in the tokens file for each demo role.
TOKEN_VARIABLES = {
    "applicant": "SAGSFLOW_APPLICANT_TOKEN",
    "caseworker": "SAGSFLOW_CASEWORKER_TOKEN",
    "approver": "SAGSFLOW_APPROVER_TOKEN",
}

# Source codes of Annex A specimens that Article 7(1) of Regulation (EC) No 338/97 treats
# as Annex B specimens: bred in captivity (C, D) or artificially propagated (A). Chapter
# XIII of Regulation (EC) No 865/2006 sets the criteria a specimen must meet for that.
CAPTIVE_SOURCES = frozenset({"A", "C", "D"})

MESSAGES: dict[str, tuple[str, str]] = {
    "submitted": (
        "Ansøgning indsendt: sag {journal_number}, {title} (fase: {phase}).",
        "Application submitted: case {journal_number}, {title} (phase: {phase}).",
    ),
    "completeness_check": (
        "completeness_check: ansøgningen er fuldstændig (fase: {phase}).",
        "completeness_check: the application is complete (phase: {phase}).",
    ),
    "export_permit_check": (
        "export_permit_check: eksportlandets tilladelse er kontrolleret.",
        "export_permit_check: the export permit has been checked.",
    ),
    "scientific_opinion": (
        "scientific_opinion: bilag A, den videnskabelige myndigheds udtalelse er positiv.",
        "scientific_opinion: Annex A, the scientific authority's opinion is positive.",
    ),
    "fact_assessment": (
        "fact_assessment: sagen er oplyst, ingen høring (fase: {phase}).",
        "fact_assessment: facts established, no consultation (phase: {phase}).",
    ),
    "draft_decision": (
        "draft_decision: udkast til afgørelse skrevet (fase: {phase}).",
        "draft_decision: draft decision written (phase: {phase}).",
    ),
    "decision_approval": (
        "decision_approval: udkastet er godkendt af godkenderen (fase: {phase}).",
        "decision_approval: the approver approved the draft (phase: {phase}).",
    ),
    "letter_sent": (
        "Afgørelsesbrevet (dokument {number}) er sendt med digital post:",
        "The decision letter (document {number}) was sent by digital post:",
    ),
    "closing_check": (
        "closing_check: sagen er afsluttet (fase: {phase}, status: {status}).",
        "closing_check: the case is closed (phase: {phase}, status: {status}).",
    ),
    "http_error": (
        "Fejl: {method} {path} gav HTTP {status} ({code}): {message}",
        "Error: {method} {path} returned HTTP {status} ({code}): {message}",
    ),
    "unreachable": (
        "Fejl: kan ikke forbinde til {url} ({reason}). Start serveren med 'make run', eller angiv --url.",
        "Error: cannot connect to {url} ({reason}). Start the server with 'make run', or give --url.",
    ),
    "timed_out": (
        "Fejl: {method} {path} fik intet svar inden for {seconds:g} sekunder. Se serverens log.",
        "Error: {method} {path} timed out after {seconds:g} seconds without a response. Check the server log.",
    ),
    "not_json": (
        "Fejl: {method} {path} gav HTTP {status} med et svar, der ikke er JSON: {body}",
        "Error: {method} {path} returned HTTP {status} with a response that is not JSON: {body}",
    ),
    "tokens_missing": (
        "Fejl: nøglefilen {path} findes ikke. Kør 'make run' eller 'sagsflow token demo' først, eller angiv --tokens.",
        "Error: the tokens file {path} does not exist. Run 'make run' or 'sagsflow token demo' first, "
        "or give --tokens.",
    ),
    "tokens_unreadable": (
        "Fejl: kan ikke læse nøglefilen {path}: {reason}",
        "Error: cannot read the tokens file {path}: {reason}",
    ),
    "token_missing": (
        "Fejl: nøglefilen {path} mangler {variable}. Kør 'sagsflow token demo' for at skrive filen igen.",
        "Error: the tokens file {path} lacks {variable}. Run 'sagsflow token demo' to write the file again.",
    ),
    "application_unreadable": (
        "Fejl: kan ikke læse ansøgningen {path}: {reason}",
        "Error: cannot read the application {path}: {reason}",
    ),
    "application_shape": (
        "Fejl: ansøgningen {path} skal være et JSON-objekt med 'process' og 'data', som filerne i examples/cites/.",
        "Error: the application {path} must be a JSON object with 'process' and 'data', like the files in "
        "examples/cites/.",
    ),
    "letter_not_sent": (
        "Fejl: afgørelsesbrevet er ikke sendt efter {seconds:g} sekunder (status: {status}). "
        "Se serverens log, eller send udbakken med 'sagsflow outbox dispatch'.",
        "Error: the decision letter was not sent within {seconds:g} seconds (status: {status}). "
        "Check the server log, or deliver the outbox with 'sagsflow outbox dispatch'.",
    ),
}


class DriverError(Exception):
    """A failure that ends the run, with its message already in the user's language."""


class Messages:
    def __init__(self, language: str) -> None:
        self.index = 1 if language == "en" else 0

    def text(self, key: str, **params: Any) -> str:
        return MESSAGES[key][self.index].format(**params)

    def say(self, key: str, **params: Any) -> None:
        print(self.text(key, **params), flush=True)


# HTTP --------------------------------------------------------------------------------------


class Client:
    """A small JSON client for the Sagsflow API, using urllib."""

    def __init__(self, url: str, language: str, messages: Messages) -> None:
        self.url = url.rstrip("/")
        self.language = language
        self.messages = messages

    def request(
        self,
        method: str,
        path: str,
        token: str,
        body: dict[str, Any] | None = None,
        language: str | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON response. Raises `DriverError` on any failure."""
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Accept-Language": language or self.language,
        }
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        # parse_arguments accepts only http and https URLs, so urllib opens no file: or other scheme.
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310
                status = response.status
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise self._http_error(method, path, error.code, error.read()) from None
        except TimeoutError:
            timed_out = self.messages.text("timed_out", method=method, path=path, seconds=REQUEST_TIMEOUT_SECONDS)
            raise DriverError(timed_out) from None
        except OSError as error:
            reason = getattr(error, "reason", None) or error
            raise DriverError(self.messages.text("unreachable", url=self.url, reason=reason)) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise DriverError(self._not_json(method, path, status, raw)) from None

    def _http_error(self, method: str, path: str, status: int, raw: bytes) -> DriverError:
        try:
            error = json.loads(raw)["error"]
            message = str(error["message"])
        except (ValueError, KeyError, TypeError):
            return DriverError(self._not_json(method, path, status, raw))
        lines = [
            self.messages.text(
                "http_error", method=method, path=path, status=status, code=error.get("code", "?"), message=message
            )
        ]
        if error.get("hint"):
            lines.append(f"  {error['hint']}")
        for entry in error.get("errors") or []:
            if isinstance(entry, dict):
                lines.append(f"  {entry.get('field', '?')}: {entry.get('message', '')}")
                if entry.get("hint"):
                    lines.append(f"    {entry['hint']}")
        return DriverError("\n".join(lines))

    def _not_json(self, method: str, path: str, status: int, raw: bytes) -> str:
        body = raw.decode("utf-8", errors="replace").strip()[:200]
        return self.messages.text("not_json", method=method, path=path, status=status, body=body)

    def complete(self, token: str, case: dict[str, Any], step: str, data: dict[str, Any]) -> dict[str, Any]:
        path = f"/cases/{case['id']}/steps/{step}/complete"
        result: dict[str, Any] = self.request("POST", path, token, {"data": data, "version": case["version"]})
        return result

    def approve(self, token: str, case: dict[str, Any], step: str) -> dict[str, Any]:
        path = f"/cases/{case['id']}/steps/{step}/approve"
        result: dict[str, Any] = self.request("POST", path, token, {"decision": "approve", "version": case["version"]})
        return result


# Inputs ------------------------------------------------------------------------------------


def read_tokens(path: Path, messages: Messages) -> dict[str, str]:
    """Read the demo tokens (KEY=value lines, as `sagsflow token demo` writes them) per role."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DriverError(messages.text("tokens_missing", path=path)) from None
    except OSError as error:
        raise DriverError(messages.text("tokens_unreadable", path=path, reason=error)) from None

    variables: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        variables[name.strip()] = value.strip().strip("'\"")

    tokens: dict[str, str] = {}
    for role, variable in TOKEN_VARIABLES.items():
        if not variables.get(variable):
            raise DriverError(messages.text("token_missing", path=path, variable=variable))
        tokens[role] = variables[variable]
    return tokens


def read_application(path: Path, messages: Messages) -> dict[str, Any]:
    try:
        application = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DriverError(messages.text("application_unreadable", path=path, reason=error)) from None
    if (
        not isinstance(application, dict)
        or "process" not in application
        or not isinstance(application.get("data"), dict)
    ):
        raise DriverError(messages.text("application_shape", path=path))
    return application


# Case content --------------------------------------------------------------------------------
#
# NOTE: the texts below are demo examples, not reviewed legal wording. They cover the
# Annex A and B species that the CITES import process handles.


def option_labels(process: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Return the option labels of each enum field of the application form: field → value → label."""
    labels: dict[str, dict[str, str]] = {}
    for field in process.get("application_form", []):
        if field.get("options"):
            labels[field["field"]] = {option["value"]: option["label"] for option in field["options"]}
    return labels


def _label(labels: dict[str, dict[str, str]], data: dict[str, Any], field: str) -> str:
    value = str(data.get(field, ""))
    return labels.get(field, {}).get(value, value)


def _regulation_article(data: dict[str, Any]) -> str:
    """Return the paragraph of Article 4 of Regulation (EC) No 338/97 that the import falls under."""
    if data.get("eu_annex") == "A" and data.get("source") not in CAPTIVE_SOURCES:
        return "1"
    return "2"


def assessment_note(data: dict[str, Any], language: str) -> str:
    register = data.get("applicant_register_name") or data.get("applicant_name")
    status = data.get("applicant_register_status") or "?"
    appendix, annex = data.get("cites_appendix", "?"), data.get("eu_annex", "?")
    permit = data.get("export_permit_number") or "-"
    if language == "en":
        return (
            f"Species+: Appendix {appendix}, Annex {annex}. CVR: {register}, status {status}. "
            f"Export permit {permit} checked. No consultation needed."
        )
    return (
        f"Species+: liste {appendix}, bilag {annex}. CVR: {register}, status {status}. "
        f"Eksporttilladelse {permit} kontrolleret. Høring er ikke nødvendig."
    )


def draft_decision(data: dict[str, Any], labels: dict[str, dict[str, str]], language: str) -> dict[str, str]:
    """Build the draft decision's form values from the case data, in the case's language."""
    if language == "en":
        return {
            "decision_outcome": "granted",
            "decision_text": _decision_text_en(data, labels),
            "statement_of_reasons": _reasons_en(data, labels),
        }
    return {
        "decision_outcome": "granted",
        "decision_text": _decision_text_da(data, labels),
        "statement_of_reasons": _reasons_da(data, labels),
    }


def _decision_text_da(data: dict[str, Any], labels: dict[str, dict[str, str]]) -> str:
    unit = _label(labels, data, "unit")
    kind = _label(labels, data, "specimen_type").lower()
    exporter = str(data["exporter_name"]).rstrip(".")
    return (
        f"Vi giver {data['applicant_name']} tilladelse til at indføre {data['quantity']} {unit} "
        f"*{data['species']}* ({kind}) til EU fra {exporter}."
    )


def _decision_text_en(data: dict[str, Any], labels: dict[str, dict[str, str]]) -> str:
    unit = _label(labels, data, "unit")
    if data.get("unit") == "stk" and data.get("quantity") == 1:
        unit = "specimen"  # the option label is the plural "specimens"
    kind = _label(labels, data, "specimen_type").lower()
    exporter = str(data["exporter_name"]).rstrip(".")
    return (
        f"We grant {data['applicant_name']} a permit to import {data['quantity']} {unit} of "
        f"*{data['species']}* ({kind}) into the EU from {exporter}."
    )


def _reasons_da(data: dict[str, Any], labels: dict[str, dict[str, str]]) -> str:
    annex, source = data.get("eu_annex"), data.get("source")
    source_label = _label(labels, data, "source").lower()
    purpose_label = _label(labels, data, "purpose").lower()
    permit = data.get("export_permit_number")
    paragraphs = [
        f"*{data['species']}* er opført på CITES-liste {data.get('cites_appendix')} og på bilag {annex} "
        "til Rådets forordning (EF) nr. 338/97."
    ]
    if annex == "A" and source in CAPTIVE_SOURCES:
        paragraphs.append(
            f"Eksemplarerne har oprindelseskode {source} ({source_label}). Efter forordningens artikel 7, stk. 1, "
            "behandles de derfor som eksemplarer af arter på bilag B."
        )
    if annex == "A":
        paragraphs.append(
            "Den videnskabelige myndighed har afgivet en positiv udtalelse om, at indførslen ikke skader "
            "artens bevaringsstatus."
        )
    permit_text = f"nr. {permit} " if permit else ""
    paragraphs.append(
        f"Vi har kontrolleret eksporttilladelsen {permit_text}fra eksportlandet ({data['country_of_export']}). "
        f"Ansøgningen angiver formålskode {data['purpose']} ({purpose_label})."
    )
    paragraphs.append(
        f"Vi har lagt vægt på disse forhold og vurderer, at betingelserne i forordningens artikel 4, "
        f"stk. {_regulation_article(data)}, for at udstede en importtilladelse er opfyldt."
    )
    return "\n\n".join(paragraphs)


def _reasons_en(data: dict[str, Any], labels: dict[str, dict[str, str]]) -> str:
    annex, source = data.get("eu_annex"), data.get("source")
    source_label = _label(labels, data, "source").lower()
    purpose_label = _label(labels, data, "purpose").lower()
    permit = data.get("export_permit_number")
    paragraphs = [
        f"*{data['species']}* is listed in CITES Appendix {data.get('cites_appendix')} and in Annex {annex} "
        "to Council Regulation (EC) No 338/97."
    ]
    if annex == "A" and source in CAPTIVE_SOURCES:
        paragraphs.append(
            f"The specimens have source code {source} ({source_label}). Under Article 7(1) of the Regulation "
            "they are therefore treated as specimens of species listed in Annex B."
        )
    if annex == "A":
        paragraphs.append(
            "The scientific authority has given a positive opinion that the import will not harm the "
            "conservation status of the species."
        )
    permit_text = f"no. {permit} " if permit else ""
    paragraphs.append(
        f"We have checked the export permit {permit_text}of the country of export ({data['country_of_export']}). "
        f"The application gives purpose code {data['purpose']} ({purpose_label})."
    )
    paragraphs.append(
        f"Based on these facts, we find that the conditions of Article 4({_regulation_article(data)}) of the "
        "Regulation for issuing an import permit are met."
    )
    return "\n\n".join(paragraphs)


def closing_note(language: str) -> str:
    return "Decision sent; case closed." if language == "en" else "Afgørelsen er sendt; sagen afsluttes."


# The run -----------------------------------------------------------------------------------


def wait_for_decision_letter(
    client: Client, token: str, case_id: int, timeout: float, messages: Messages
) -> dict[str, Any]:
    """Poll the case's letters until the outbox has sent the decision letter, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    status = "?"
    while True:
        letters = client.request("GET", f"/cases/{case_id}/letters", token)
        decisions = [letter for letter in letters if letter.get("letter") == "decision"]
        if decisions:
            status = decisions[-1]["status"]
            if status == "sent":
                letter: dict[str, Any] = decisions[-1]
                return letter
        if time.monotonic() >= deadline:
            raise DriverError(messages.text("letter_not_sent", seconds=timeout, status=status))
        time.sleep(POLL_INTERVAL_SECONDS)


def drive(client: Client, tokens: dict[str, str], application: dict[str, Any], wait: float) -> dict[str, Any]:
    """Take one application through every step of the CITES process and return the closed case."""
    messages = client.messages
    caseworker = tokens["caseworker"]

    case: dict[str, Any] = client.request("POST", "/cases", tokens["applicant"], application)
    messages.say("submitted", journal_number=case["journal_number"], title=case["title"], phase=case["phase"]["label"])
    language = case.get("language") or "da"
    process = client.request("GET", f"/processes/{case['process']['id']}", caseworker, language=language)
    labels = option_labels(process)

    case = client.complete(caseworker, case, "completeness_check", {"application_complete": True})
    messages.say("completeness_check", phase=case["phase"]["label"])

    case = client.complete(caseworker, case, "export_permit_check", {"export_permit_verified": True})
    messages.say("export_permit_check")

    # The process skips this step unless the species is listed in Annex A.
    if "scientific_opinion" in case["active_steps"]:
        case = client.complete(caseworker, case, "scientific_opinion", {"scientific_authority_opinion": "positive"})
        messages.say("scientific_opinion")

    facts = {"assessment_note": assessment_note(case["data"], language), "consultation_required": False}
    case = client.complete(caseworker, case, "fact_assessment", facts)
    messages.say("fact_assessment", phase=case["phase"]["label"])

    case = client.complete(caseworker, case, "draft_decision", draft_decision(case["data"], labels, language))
    messages.say("draft_decision", phase=case["phase"]["label"])

    # Four eyes: the approver is another user than the caseworker who wrote the draft.
    case = client.approve(tokens["approver"], case, "decision_approval")
    messages.say("decision_approval", phase=case["phase"]["label"])

    letter = wait_for_decision_letter(client, caseworker, case["id"], wait, messages)
    messages.say("letter_sent", number=letter["number"])
    print(file=sys.stdout)
    print(letter["text"].rstrip(), flush=True)
    print(file=sys.stdout)

    case = client.complete(caseworker, case, "closing_check", {"closing_note": closing_note(language)})
    messages.say("closing_check", phase=f"{case['phase']['label']} ({case['phase']['id']})", status=case["status"])
    return case


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Drive a CITES import permit application from submission to a closed case over HTTP.",
    )
    parser.add_argument("application", type=Path, help="application JSON file, e.g. examples/cites/01-kongepython.json")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"base URL of the Sagsflow API (default: {DEFAULT_URL})")
    parser.add_argument(
        "--tokens",
        type=Path,
        default=DEFAULT_TOKENS,
        help="file with the demo tokens, as 'sagsflow token demo' writes it (default: var/demo-tokens.env)",
    )
    parser.add_argument(
        "--lang", choices=("da", "en"), default="da", help="language of this script's output and of server errors"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=5.0,
        help="seconds to wait for the outbox to send the decision letter (default: 5)",
    )
    arguments = parser.parse_args(argv)
    if not arguments.url.startswith(("http://", "https://")):
        parser.error(f"--url must start with http:// or https://, not {arguments.url!r}")
    if arguments.wait < 0:
        parser.error("--wait must be 0 or more seconds")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Run the driver and return its exit status: 0 when the case is closed, 1 on any error."""
    arguments = parse_arguments(argv)
    messages = Messages(arguments.lang)
    try:
        tokens = read_tokens(arguments.tokens, messages)
        application = read_application(arguments.application, messages)
        client = Client(arguments.url, arguments.lang, messages)
        drive(client, tokens, application, arguments.wait)
    except DriverError as error:
        print(error, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
