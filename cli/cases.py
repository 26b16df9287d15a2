"""Case work from the server's shell, acting as a named registered user.

    sagsflow case submit PROCESS --as USER --data FILE.json [--letter-language da|en]
    sagsflow case complete CASE STEP --as USER [--data JSON | --data @FILE] [--version N]
    sagsflow case approve CASE STEP --as USER --decision approve|reject [--comment TEXT] [--version N]
    sagsflow case hearing CASE STEP --as USER [--party 'NAME,CVR|CPR,NUMBER[,EMAIL][;ADDRESS, POSTCODE CITY]' ...]
        [--party 'NAME,NONE;ADDRESS, POSTCODE CITY' ...] [--merge KEY=TEXT ...]
    sagsflow case letters CASE [--as USER]
    sagsflow chat post CASE TEXT --as USER [--version N]
    sagsflow chat list CASE [--as USER]
    sagsflow processes

The CLI runs on the server with direct access to the database, so it is trusted to name
the user: `--as USER` needs no token. The command then acts exactly as a bearer token
without scopes of that user would over HTTP. It reads the user's current roles and teams
from the users table, rejects an unknown or deactivated user, and leaves every rule to
the engine: the step's role, four and six eyes, team visibility and duplicate
applications. The audit trail records the named user as the actor. Read-only commands
without `--as` run as the operator (`cli.common.operator`), who may read every case.

Like the API, a command that may queue letters delivers the outbox right after it.

Exit codes: 0 on success; 1 when the engine rejects the command or a file cannot be
read; 2 for a malformed option value (inline JSON, --party, --merge) or an internal error.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    OptionalUserOption,
    acting_user,
    actor_for,
    count,
    fail,
    open_service,
    reported_errors,
    say,
    state,
)
from engine.records import CaseRecords
from engine.runtime.commands import CaseCommand
from engine.runtime.hearings import open_hearing, record_reply

chat_app = typer.Typer(help="Chat mellem sagens medarbejdere / chat between the case's staff.", no_args_is_help=True)

# A JSON file larger than this is rejected before it is read. The API limits request bodies to the same size.
MAX_JSON_FILE_BYTES = 1_000_000

CaseArgument = Annotated[str, typer.Argument(help="Sagens id eller journalnummer / case id or journal number.")]
StepArgument = Annotated[str, typer.Argument(help="Trinnets id, fx completeness_check / the step id.")]
ActingUserOption = Annotated[
    str,
    typer.Option(
        "--as",
        help="Den registrerede bruger, der handler; brugerens roller og teams gælder / "
        "the registered user to act as, with their roles and teams.",
    ),
]
VersionOption = Annotated[
    int | None,
    typer.Option(
        "--version",
        min=1,
        help="Sagens version, som du sidst så den; afvises, hvis sagen er ændret siden / "
        "the case version you last saw; rejected if the case changed since.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Skriv sagen som JSON / print the case as JSON.")]


class LetterLanguage(StrEnum):
    DA = "da"
    EN = "en"


class DecisionChoice(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


def register(app: typer.Typer) -> None:
    """Add the case work commands to the existing `case` group, and the `chat` group."""
    case_app = _group(app, "case")
    case_app.command("submit")(case_submit)
    case_app.command("complete")(case_complete)
    case_app.command("approve")(case_approve)
    case_app.command("hearing")(case_hearing)
    case_app.command("reply")(case_reply)
    case_app.command("letters")(case_letters)
    app.add_typer(chat_app, name="chat")
    app.command("processes")(processes)


def _group(app: typer.Typer, name: str) -> typer.Typer:
    """Return the sub-application `name` that `cli.main` added, because importing it from there would be circular."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    raise LookupError(f"the sagsflow application has no command group '{name}'")


# The acting user ---------------------------------------------------------------------------------


# Errors and input --------------------------------------------------------------------------------


def _read_json_file(path: Path) -> Any:
    """Return the parsed content of a JSON file, or exit 1 with a message that names the file."""
    if not path.is_file():
        raise fail(f"{path} findes ikke eller er ikke en fil.", f"{path} does not exist or is not a file.")
    try:
        if path.stat().st_size > MAX_JSON_FILE_BYTES:
            raise fail(
                f"{path} er større end {MAX_JSON_FILE_BYTES} byte.",
                f"{path} is larger than {MAX_JSON_FILE_BYTES} bytes.",
            )
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise fail(
            f"{path} kunne ikke læses: {error.strerror}.", f"{path} could not be read: {error.strerror}."
        ) from None
    except UnicodeDecodeError:
        raise fail(f"{path} er ikke UTF-8-tekst.", f"{path} is not UTF-8 text.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise fail(
            f"{path} er ikke gyldig JSON: {error.msg} (linje {error.lineno}, kolonne {error.colno}).",
            f"{path} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).",
        ) from None


def _json_object(value: Any, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(
            f'{source} skal indeholde et JSON-objekt, fx {{"felt": "værdi"}}.',
            f'{source} must contain a JSON object, e.g. {{"field": "value"}}.',
        )
    return value


def _step_data(option: str | None) -> dict[str, Any]:
    """Parse `--data` of `case complete`: inline JSON, or `@FILE` for a JSON file."""
    if option is None:
        return {}
    if option.startswith("@"):
        path = Path(option[1:])
        return _json_object(_read_json_file(path), str(path))
    try:
        value = json.loads(option)
    except json.JSONDecodeError as error:
        raise fail(
            f"--data er ikke gyldig JSON: {error.msg} (tegn {error.pos + 1}). Brug @FIL for at læse en fil.",
            f"--data is not valid JSON: {error.msg} (character {error.pos + 1}). Use @FILE to read a file.",
            code=2,
        ) from None
    if not isinstance(value, dict):
        raise fail(
            "--data skal være et JSON-objekt, fx '{\"application_complete\": true}'.",
            "--data must be a JSON object, e.g. '{\"application_complete\": true}'.",
            code=2,
        )
    return value


def _application(path: Path, process: str) -> tuple[dict[str, Any], str | None]:
    """Return the field values and letter language of an application file.

    The file contains either the field values, or a request body of `POST /cases` such as
    examples/cites/01-kongepython.json: {"process": ..., "data": {...}, "language": ...}.
    """
    content = _json_object(_read_json_file(path), str(path))
    is_request_body = isinstance(content.get("data"), dict) and set(content) <= {"process", "data", "language"}
    if not is_request_body:
        return content, None
    named = content.get("process")
    if named is not None and named != process:
        raise fail(
            f"{path} er en ansøgning til '{named}', ikke til '{process}'.",
            f"{path} is an application for '{named}', not for '{process}'.",
        )
    language = content.get("language")
    return content["data"], language if isinstance(language, str) else None


def _party(option: str) -> dict[str, Any]:
    """Parse `--party NAME,CVR|CPR,NUMBER[,EMAIL][;ADDRESS, POSTCODE CITY]` or `NAME,NONE;ADDRESS, POSTCODE CITY`.

    The name may itself contain commas, but not semicolons. The engine checks every value.
    """
    identity, separator, postal = option.partition(";")
    head, _, last = identity.rpartition(",")
    if last.strip().upper() == "NONE" and head.strip():
        party: dict[str, Any] = {"name": head.strip(), "id_type": "NONE"}
    else:
        party = _numbered_party(option, identity)
    if separator:
        party.update(_postal_address(option, postal))
    return party


def _numbered_party(option: str, identity: str) -> dict[str, Any]:
    parts = [part.strip() for part in identity.rsplit(",", 3)]
    email = None
    if len(parts) == 4 and "@" in parts[3]:
        email = parts.pop()
    else:
        parts = [part.strip() for part in identity.rsplit(",", 2)]
    if len(parts) < 3 or not parts[0]:
        raise fail(
            f"--party '{option}' skal have formen NAVN,CVR,NUMMER eller NAVN,CPR,NUMMER (evt. ,E-MAIL til sidst), "
            "eller NAVN,NONE;ADRESSE, POSTNUMMER BY for en part uden nummer.",
            f"--party '{option}' must have the form NAME,CVR,NUMBER or NAME,CPR,NUMBER (optionally ,EMAIL last), "
            "or NAME,NONE;ADDRESS, POSTCODE CITY for a party without a number.",
            code=2,
        )
    party = {"name": parts[0], "id_type": parts[1].upper(), "id": parts[2]}
    if email is not None:
        party["email"] = email
    return party


def _postal_address(option: str, postal: str) -> dict[str, str]:
    """Split `ADDRESS, POSTCODE CITY`, such as `Kajgade 1, 2. th., 8600 Silkeborg`, at its last comma."""
    street, _, place = postal.rpartition(",")
    postcode, _, city = place.strip().partition(" ")
    if not street.strip() or not postcode or not city.strip():
        raise fail(
            f"Adressen i --party '{option}' skal have formen ADRESSE, POSTNUMMER BY, fx Kajgade 1, 8600 Silkeborg.",
            f"The address in --party '{option}' must have the form ADDRESS, POSTCODE CITY, "
            "e.g. Kajgade 1, 8600 Silkeborg.",
            code=2,
        )
    return {"address": street.strip(), "postcode": postcode, "city": city.strip()}


def _merged(options: list[str]) -> dict[str, str]:
    """Parse `--merge KEY=TEXT` options into a dictionary. The engine checks the keys and the texts."""
    merged: dict[str, str] = {}
    for option in options:
        key, separator, text = option.partition("=")
        key = key.strip()
        if not separator or not key:
            raise fail(
                f"--merge '{option}' skal have formen NØGLE=TEKST, fx question=Har I bemærkninger?",
                f"--merge '{option}' must have the form KEY=TEXT, e.g. question=Any comments?",
                code=2,
            )
        if key in merged:
            raise fail(f"--merge giver '{key}' to gange.", f"--merge gives '{key}' twice.", code=2)
        merged[key] = text
    return merged


# Output ------------------------------------------------------------------------------------------


def _deliver_letters(service: Any, as_json: bool) -> None:
    """Deliver the letters that the command queued, as the API does after a command.

    The command is committed by now, so a failed delivery is only a warning, and the worker
    or `sagsflow outbox dispatch` delivers the letters later. With `as_json` the count of
    sent letters goes to standard error, so that standard output stays one JSON document.
    """
    try:
        report = service.dispatch_outbox()
    except Exception as error:
        # Any failure here comes after the commit, and a non-zero exit would invite the user to repeat the command.
        typer.echo(
            say(
                f"Advarsel: handlingen er gemt, men breve kunne ikke sendes: {type(error).__name__}: {error}. "
                "Kør 'sagsflow outbox dispatch'.",
                f"Warning: the action was saved, but letters could not be sent: {type(error).__name__}: {error}. "
                "Run 'sagsflow outbox dispatch'.",
            ),
            err=True,
        )
        return
    if report.sent:
        typer.echo(
            say(f"{count(report.sent, 'brev', 'breve')} sendt.", f"{count(report.sent, 'letter', 'letters')} sent."),
            err=as_json,
        )
    if report.retried or report.failed:
        typer.echo(
            say(
                f"Advarsel: {report.retried} breve prøves igen senere, {report.failed} er opgivet.",
                f"Warning: {report.retried} letters will be retried later, {report.failed} were given up.",
            ),
            err=True,
        )


def _print_case(view: dict[str, Any], headline: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    typer.echo(headline)
    status = {"open": say("åben", "open"), "closed": say("afsluttet", "closed")}.get(view["status"], view["status"])
    typer.echo(f"  {say('Fase', 'Phase')}: {view['phase']['label']}   Status: {status}   Version: {view['version']}")
    # An applicant's view has no checklist and no active steps (engine.runtime.views.applicant_view).
    if "active_steps" in view:
        active = ", ".join(view["active_steps"]) or say("ingen", "none")
        typer.echo(f"  {say('Aktive trin', 'Active steps')}: {active}")


def _step_row(view: dict[str, Any], step: str) -> dict[str, Any] | None:
    rows = [row for row in view.get("checklist", []) if row["step"] == step]
    return rows[-1] if rows else None


# Case commands -----------------------------------------------------------------------------------


def case_submit(
    process: Annotated[str, typer.Argument(help="Procesens id / the process id, e.g. cites-import.")],
    as_user: ActingUserOption,
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="JSON-fil med ansøgningens felter, eller en anmodning til POST /cases som examples/cites/*.json / "
            "JSON file with the application's fields, or a POST /cases request body.",
        ),
    ],
    letter_language: Annotated[
        LetterLanguage | None,
        typer.Option(
            "--letter-language",
            help="Sproget i sagens breve; standard: filens language eller --lang / the language of the case's letters.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Indgiv en ansøgning og opret en sag / submit an application and create a case."""
    values, file_language = _application(data, process)
    with reported_errors():
        service = open_service()
        actor = acting_user(service, as_user)
        language = letter_language.value if letter_language else (file_language or state.language)
        view = service.submit(actor, process, values, language)
    _print_case(
        view,
        say(
            f"Sag {view['journal_number']} er oprettet (id {view['id']}): {view['title']}",
            f"Case {view['journal_number']} was created (id {view['id']}): {view['title']}",
        ),
        as_json,
    )
    _deliver_letters(service, as_json)


def case_complete(
    case: CaseArgument,
    step: StepArgument,
    as_user: ActingUserOption,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Trinnets formularfelter som JSON-objekt, eller @FIL / the step's form fields as JSON, or @FILE.",
        ),
    ] = None,
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Udfør en opgave på en sag med formularens data / complete a task step with its form data."""
    values = _step_data(data)
    with reported_errors():
        service = open_service()
        actor = acting_user(service, as_user)
        view = service.complete_step(actor, case, step, values, version, state.language)
    _print_case(
        view,
        say(
            f"{view['journal_number']}: trinnet '{step}' er udført af {actor.name}.",
            f"{view['journal_number']}: the step '{step}' was completed by {actor.name}.",
        ),
        as_json,
    )
    _deliver_letters(service, as_json)


def case_approve(
    case: CaseArgument,
    step: StepArgument,
    as_user: ActingUserOption,
    decision: Annotated[
        DecisionChoice,
        typer.Option("--decision", help="approve (godkend) eller/or reject (afvis og send udkastet tilbage)."),
    ],
    comment: Annotated[
        str | None,
        typer.Option("--comment", help="Kommentar; kræves ved reject / comment; required with reject."),
    ] = None,
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Godkend eller afvis et udkast (fire eller seks øjne) / approve or reject a draft (four or six eyes)."""
    with reported_errors():
        service = open_service()
        actor = acting_user(service, as_user)
        view = service.approve(actor, case, step, decision.value, comment, version, state.language)
    row = _step_row(view, step)
    if decision == DecisionChoice.REJECT:
        headline = say(
            f"{view['journal_number']}: {actor.name} har afvist trinnet '{step}'.",
            f"{view['journal_number']}: {actor.name} rejected the step '{step}'.",
        )
    elif row is not None and row["status"] == "active":
        headline = say(
            f"{view['journal_number']}: {actor.name} har godkendt; trinnet '{step}' venter på endnu en godkender.",
            f"{view['journal_number']}: {actor.name} approved; the step '{step}' waits for another approver.",
        )
    else:
        headline = say(
            f"{view['journal_number']}: {actor.name} har godkendt trinnet '{step}'.",
            f"{view['journal_number']}: {actor.name} approved the step '{step}'.",
        )
    _print_case(view, headline, as_json)
    _deliver_letters(service, as_json)


def case_hearing(
    case: CaseArgument,
    step: StepArgument,
    as_user: ActingUserOption,
    party: Annotated[
        list[str] | None,
        typer.Option(
            "--party",
            help="Part, der høres: NAVN,CVR,NUMMER eller NAVN,CPR,NUMMER[,E-MAIL], evt. med postadresse efter "
            "semikolon: ;ADRESSE, POSTNUMMER BY. En part uden nummer: NAVN,NONE;ADRESSE, POSTNUMMER BY (brevet sendes "
            "med almindelig post). Kan gentages; en partshøring hører altid også sagens egen part / a party to "
            "hear: NAME,CVR|CPR,NUMBER[,EMAIL], optionally followed by a postal address after a semicolon: ;ADDRESS, "
            "POSTCODE CITY. A party without a number: NAME,NONE;ADDRESS, POSTCODE CITY (the letter goes by physical "
            "mail). Repeatable; a party hearing always hears the case's own party as well.",
        ),
    ] = None,
    merge: Annotated[
        list[str] | None,
        typer.Option(
            "--merge",
            help="Tekst til brevets flettefelt: NØGLE=TEKST; kan gentages / text for a merge field: KEY=TEXT.",
        ),
    ] = None,
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Åbn høringen på et hørings- eller partshøringstrin: ét brev pr. part / open a hearing: one letter per party."""
    parties = [_party(option) for option in party or []]
    merged = _merged(merge or [])

    def work(command: CaseCommand) -> None:
        open_hearing(command, step, parties, merged)

    with reported_errors():
        service = open_service()
        actor = acting_user(service, as_user)
        view = service.run_command(actor, case, version, state.language, "open_hearing", work)
    row = _step_row(view, step)
    due = f" {say('Frist', 'Deadline')}: {row['due_at']}." if row and row["due_at"] else ""
    _print_case(
        view,
        say(
            f"{view['journal_number']}: høringen på trinnet '{step}' er åbnet af {actor.name}.{due}",
            f"{view['journal_number']}: the hearing of the step '{step}' was opened by {actor.name}.{due}",
        ),
        as_json,
    )
    _deliver_letters(service, as_json)


def case_reply(
    case: CaseArgument,
    step: StepArgument,
    as_user: ActingUserOption,
    party: Annotated[
        str,
        typer.Option(
            "--party",
            help="CVR- eller CPR-nummer eller navn på parten, der svarer / the CVR or CPR number or name of the party.",
        ),
    ],
    text: Annotated[str, typer.Option("--text", help="Svaret eller et resumé af det / the reply or a summary.")],
    file: Annotated[
        list[Path] | None,
        typer.Option("--file", help="Bilag, fx det skannede brev; kan gentages / an attachment; repeatable."),
    ] = None,
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Registrér et høringssvar, der kom med post eller e-mail / record a hearing reply received by post or e-mail."""
    attachments = []
    for path in file or []:
        if not path.is_file():
            raise fail(f"{path} findes ikke eller er ikke en fil.", f"{path} does not exist or is not a file.")
        attachments.append(
            {
                "filename": path.name,
                "content_type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                "content_base64": base64.b64encode(path.read_bytes()).decode("ascii"),
            }
        )

    def work(command: CaseCommand) -> None:
        record_reply(command, step, party, text, attachments)

    with reported_errors():
        service = open_service()
        actor = acting_user(service, as_user)
        view = service.run_command(actor, case, version, state.language, "record_hearing_reply", work)
    row = _step_row(view, step)
    status_names = {"done": ("afsluttet", "done"), "waiting": ("venter på flere svar", "waiting for more replies")}
    names = status_names.get(row["status"], (row["status"], row["status"])) if row else None
    status = f" {say('Trinnet er nu', 'The step is now')} {say(*names)}." if names else ""
    _print_case(
        view,
        say(
            f"{view['journal_number']}: høringssvaret fra '{party}' er registreret af {actor.name}.{status}",
            f"{view['journal_number']}: the hearing reply from '{party}' was recorded by {actor.name}.{status}",
        ),
        as_json,
    )
    _deliver_letters(service, as_json)


def case_letters(
    case: CaseArgument,
    as_user: OptionalUserOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Skriv brevene med tekst som JSON / print JSON.")] = False,
) -> None:
    """Vis sagens breve; en ansøger ser kun de sendte / list the case's letters; an applicant sees only sent ones."""
    with reported_errors():
        service = open_service()
        letters = service.list_letters(actor_for(service, as_user), case)
    if as_json:
        typer.echo(json.dumps(letters, ensure_ascii=False, indent=2))
        return
    for letter in letters:
        sent = letter["sent_at"] or "-"
        typer.echo(f"{letter['number']:>4}. {letter['title']:<48} {letter['status']:<8} {sent}")
    typer.echo(say(f"{count(len(letters), 'brev', 'breve')}.", f"{count(len(letters), 'letter', 'letters')}."))


# Chat --------------------------------------------------------------------------------------------


@chat_app.command("post")
def chat_post(
    case: CaseArgument,
    text: Annotated[str, typer.Argument(help="Beskedens tekst / the message text.")],
    as_user: ActingUserOption,
    version: VersionOption = None,
) -> None:
    """Skriv en besked til sagens medarbejdere / post a message to the case's staff."""
    with reported_errors():
        service = open_service()
        message = CaseRecords(service).add_message(acting_user(service, as_user), case, text, version)
    typer.echo(
        say(
            f"Besked {message['id']} er skrevet af {message['created_by']} (sagen er nu på version "
            f"{message['case_version']}).",
            f"Message {message['id']} was posted by {message['created_by']} (the case is now at version "
            f"{message['case_version']}).",
        )
    )


@chat_app.command("list")
def chat_list(
    case: CaseArgument,
    as_user: OptionalUserOption = None,
    limit: Annotated[
        int, typer.Option(help="Højst så mange beskeder (1-500) / at most this many.", min=1, max=500)
    ] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")] = False,
) -> None:
    """Vis sagens chatbeskeder i rækkefølge / list the case's chat messages in order."""
    with reported_errors():
        service = open_service()
        messages = CaseRecords(service).list_messages(actor_for(service, as_user), case, limit=limit)
    if as_json:
        typer.echo(json.dumps(messages, ensure_ascii=False, indent=2))
        return
    for message in messages["items"]:
        typer.echo(f"{message['id']:>6}  {message['created_at']}  {message['created_by']}")
        for line in message["text"].splitlines():
            typer.echo(f"        {line}")
    listed, total = len(messages["items"]), messages["total"]
    typer.echo(
        say(
            f"{listed} af {count(total, 'besked', 'beskeder')}.",
            f"{listed} of {count(total, 'message', 'messages')}.",
        )
    )


# Processes ---------------------------------------------------------------------------------------


def processes(as_json: Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")] = False) -> None:
    """Vis de udrullede processer i nyeste version / list the deployed processes at their newest version."""
    with reported_errors():
        deployed = open_service().list_processes(state.language)
    if as_json:
        typer.echo(json.dumps(deployed, ensure_ascii=False, indent=2))
        return
    for process in deployed:
        typer.echo(
            f"{process['id']:<24} v{process['version']:<4} {process['content_hash'][:12]}  "
            f"{process['deployed_at']}  {process['title']}"
        )
    typer.echo(
        say(
            f"{count(len(deployed), 'proces', 'processer')} udrullet.",
            f"{count(len(deployed), 'process', 'processes')} deployed.",
        )
    )
