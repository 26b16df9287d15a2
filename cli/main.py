"""`sagsflow`: the administrators' command line.

Commands in the order an administrator meets them: `db upgrade`, `validate`, `deploy`,
`token create`, `serve`, then `case list` and `case show`. Messages are Danish unless
`SAGSFLOW_LANGUAGE=en` or `--lang en` is given. Errors are printed as one clean message;
set `SAGSFLOW_DEBUG=1` to see tracebacks of unexpected failures.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import cases, people, pools, portfolio, records, schemes, worker
from cli.common import (
    OptionalUserOption,
    actor_for,
    configure_logging,
    count,
    fail,
    open_service,
    operator,
    reported_errors,
    say,
    state,
)
from engine.definitions.cache import cached_only, load_cached
from engine.definitions.loader import LoadedDefinitions, find_root, load_definitions
from engine.definitions.templates import format_amount
from engine.errors import DefinitionError
from engine.i18n import parse_language
from engine.runtime.payments import OPERATION_LABELS
from engine.runtime.resend import outbox_messages, queue_again
from engine.settings import Settings

app = typer.Typer(
    name="sagsflow",
    help="Sagsflow: deklarative sagsforløb for offentlig forvaltning / declarative case workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Databasen / the database.", no_args_is_help=True)
case_app = typer.Typer(help="Sager / cases.", no_args_is_help=True)
token_app = typer.Typer(help="Adgangsnøgler til API'et / API tokens.", no_args_is_help=True)
outbox_app = typer.Typer(
    help="Udbakken med breve og betalinger / the outbox of letters and payments.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(case_app, name="case")
app.add_typer(token_app, name="token")
app.add_typer(outbox_app, name="outbox")
for feature in (records, people, worker, cases, pools, schemes):
    feature.register(app)

logger = logging.getLogger("sagsflow.cli")

# The demo users: name, roles, teams and the variable of their token. The staff work in the
# teams of the three first-of-a-kind cases: CITES, Natura 2000 grants and KLAP.
DEMO_TEAMS = ["cites", "natura", "klap"]
DEMO_USERS: list[tuple[str, list[str], list[str], str]] = [
    ("demo-sagsbehandler", ["caseworker"], DEMO_TEAMS, "CASEWORKER"),
    ("demo-godkender", ["approver"], DEMO_TEAMS, "APPROVER"),
    # A payout needs two approvers (six eyes), neither of them the caseworker.
    ("demo-godkender-2", ["approver"], DEMO_TEAMS, "APPROVER_2"),
    ("demo-ansoeger", ["applicant"], [], "APPLICANT"),
]
DEMO_TOKEN_FILE = Path("var/demo-tokens.env")


class CaseStatusChoice(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@app.callback()
def main(
    lang: Annotated[
        str | None, typer.Option("--lang", help="Sprog for meddelelser: da eller en / message language.")
    ] = None,
) -> None:
    state.settings = Settings.from_environment()
    state.language = parse_language(lang, state.settings.language) if lang else state.settings.language
    if lang is not None and lang.strip().lower() not in ("da", "en"):
        raise fail(f"Ukendt sprog '{lang}'; brug da eller en.", f"Unknown language '{lang}'; use da or en.", code=2)


def _load(paths: list[Path] | None, root: Path | None) -> LoadedDefinitions:
    start = root or (paths[0] if paths else None) or state.settings.definitions_root
    definitions_root = root or find_root(start) or state.settings.definitions_root
    if not (definitions_root / "skeletons").is_dir():
        typer.echo(
            say(
                f"Fejl: fandt ingen mappe 'skeletons/' i {definitions_root} eller over den. Brug --root.",
                f"Error: found no 'skeletons/' folder in {definitions_root} or above it. Use --root.",
            ),
            err=True,
        )
        raise typer.Exit(1)
    for path in paths or []:
        if not path.exists():
            typer.echo(say(f"Fejl: {path} findes ikke.", f"Error: {path} does not exist."), err=True)
            raise typer.Exit(1)
    cache_dir = state.settings.cache_dir
    if cache_dir is None:
        return load_definitions(definitions_root, paths or None)
    loaded, _ = load_cached(definitions_root, paths or None, cache_dir)
    return loaded


portfolio.register(app, _load)

PathsArgument = Annotated[
    list[Path] | None,
    typer.Argument(help="Filer eller mapper; standard: alle processer / files or folders; default: all processes."),
]
RootOption = Annotated[
    Path | None,
    typer.Option("--root", help="Mappen med skeletons/ og processes/ / the definitions folder."),
]


@app.command()
def validate(
    paths: PathsArgument = None,
    root: RootOption = None,
    output: Annotated[str, typer.Option("--format", help="text (file:line:col: CODE message) eller/or json.")] = "text",
) -> None:
    """Validér skeletter og processer / validate skeletons and processes."""
    if output not in ("text", "json"):
        typer.echo(say("Fejl: --format skal være text eller json.", "Error: --format must be text or json."), err=True)
        raise typer.Exit(2)
    with reported_errors():
        loaded = _load(paths, root)
    errors = loaded.errors
    by_skeleton = dict(sorted(Counter(process.definition.skeleton for process in loaded.compiled.values()).items()))
    if output == "json":
        typer.echo(
            json.dumps(
                {
                    "valid": not errors,
                    "files": len(loaded.files),
                    "processes": sorted(loaded.compiled),
                    "by_skeleton": by_skeleton,
                    "problems": [problem.as_dict(state.language) for problem in loaded.problems],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        for problem in loaded.problems:
            typer.echo(problem.format(state.language))
        warnings = len(loaded.warnings)
        if errors:
            typer.echo(
                say(
                    f"{len(errors)} fejl og {count(warnings, 'advarsel', 'advarsler')} i "
                    f"{count(len(loaded.files), 'fil', 'filer')}.",
                    f"{count(len(errors), 'error', 'errors')} and {count(warnings, 'warning', 'warnings')} in "
                    f"{count(len(loaded.files), 'file', 'files')}.",
                ),
                err=True,
            )
        else:
            typer.echo(
                say(
                    f"OK: {count(len(loaded.compiled), 'proces', 'processer')} og "
                    f"{count(len(loaded.skeletons), 'skelet', 'skeletter')} er gyldige "
                    f"({count(warnings, 'advarsel', 'advarsler')}).",
                    f"OK: {count(len(loaded.compiled), 'process', 'processes')} and "
                    f"{count(len(loaded.skeletons), 'skeleton', 'skeletons')} are valid "
                    f"({count(warnings, 'warning', 'warnings')}).",
                )
            )
            if len(by_skeleton) > 1:
                typer.echo(
                    say("Processer pr. skelet: ", "Processes per skeleton: ")
                    + ", ".join(f"{skeleton} {number}" for skeleton, number in by_skeleton.items())
                    + "."
                )
    raise typer.Exit(1 if errors else 0)


@app.command()
def deploy(paths: PathsArgument = None, root: RootOption = None) -> None:
    """Udrul processer som nye versioner / deploy processes as new versions (nothing if any is invalid)."""
    with reported_errors():
        loaded = _load(paths, root)
        if loaded.errors:
            for problem in loaded.problems:
                typer.echo(problem.format(state.language), err=True)
            raise DefinitionError(loaded.problems)
        results = open_service().deploy(loaded, operator().name)
    created = [result for result in results if result.created]
    for result in results:
        marker = say("ny", "new") if result.created else say("uændret", "unchanged")
        typer.echo(f"{result.process_id} v{result.version} ({result.content_hash[:12]}) {marker}")
    typer.echo(
        say(
            f"{count(len(created), 'ny version', 'nye versioner')}, {len(results) - len(created)} uændrede.",
            f"{count(len(created), 'new version', 'new versions')}, {len(results) - len(created)} unchanged.",
        )
    )


def _resolved(process_id: str, root: Path | None) -> Any:
    """The resolved process `process_id` from the definition files, or exit 1 with its problems."""
    loaded = _load(None, root)
    resolution = loaded.resolutions.get(process_id)
    errors = [problem for problem in loaded.errors if resolution is not None]
    if resolution is None or process_id not in loaded.compiled:
        if resolution is None:
            known = ", ".join(sorted(loaded.resolutions)) or "-"
            typer.echo(
                say(
                    f"Fejl: processen '{process_id}' findes ikke. Kendte processer: {known}.",
                    f"Error: the process '{process_id}' does not exist. Known processes: {known}.",
                ),
                err=True,
            )
        for problem in errors:
            typer.echo(problem.format(state.language), err=True)
        raise typer.Exit(1)
    return resolution.process


ProcessArgument = Annotated[str, typer.Argument(help="Procesens id / the process id, e.g. cites-import.")]


@app.command()
def show(process: ProcessArgument, root: RootOption = None) -> None:
    """Vis den samlede proces: faser, trin, betingelser, frister / show the resolved process."""
    from engine.definitions.present import show_process  # noqa: PLC0415

    with reported_errors():
        typer.echo(show_process(_resolved(process, root), state.language), nl=False)


class DiagramFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"


@app.command()
def diagram(
    process: ProcessArgument,
    root: RootOption = None,
    output_format: Annotated[
        DiagramFormat, typer.Option("--format", help="mermaid (Markdown) eller/or dot (Graphviz).")
    ] = DiagramFormat.MERMAID,
) -> None:
    """Tegn procesens faser og overgange / draw the process's phases and transitions."""
    from engine.definitions.present import dot_diagram, mermaid_diagram  # noqa: PLC0415

    with reported_errors():
        resolved = _resolved(process, root)
    draw = dot_diagram if output_format == DiagramFormat.DOT else mermaid_diagram
    typer.echo(draw(resolved, state.language), nl=False)


@app.command()
def fmt(
    paths: Annotated[list[Path], typer.Argument(help="YAML-filer eller mapper / YAML files or folders.")],
    check: Annotated[
        bool, typer.Option("--check", help="Ændr intet; afslut med 1, hvis en fil ville blive ændret / change nothing.")
    ] = False,
) -> None:
    """Normalisér YAML-filers layout og bevar kommentarer og rækkefølge / normalise YAML layout."""
    from engine.definitions.formatting import format_file  # noqa: PLC0415

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            files.append(path)
        else:
            typer.echo(say(f"Fejl: {path} findes ikke.", f"Error: {path} does not exist."), err=True)
            raise typer.Exit(1)
    changed = failed = 0
    for path in files:
        formatted, problems = format_file(path, str(path))
        if formatted is None:
            failed += 1
            for problem in problems:
                typer.echo(problem.format(state.language), err=True)
            continue
        if formatted == path.read_text(encoding="utf-8"):
            continue
        changed += 1
        if check:
            typer.echo(say(f"ville ændre {path}", f"would change {path}"))
        else:
            path.write_text(formatted, encoding="utf-8")
            typer.echo(say(f"ændrede {path}", f"changed {path}"))
    typer.echo(
        say(
            f"{count(len(files), 'fil', 'filer')}, {changed} {'ville blive ændret' if check else 'ændret'}, "
            f"{failed} med fejl.",
            f"{count(len(files), 'file', 'files')}, {changed} {'would change' if check else 'changed'}, "
            f"{failed} with errors.",
        )
    )
    raise typer.Exit(1 if failed or (check and changed) else 0)


@app.command()
def diff(
    process: ProcessArgument,
    old: Annotated[int, typer.Argument(help="Gammel version / old version.")],
    new: Annotated[int, typer.Argument(help="Ny version / new version.")],
) -> None:
    """Vis forskellen mellem to udrullede versioner / show what changed between two deployed versions."""
    from engine.definitions.model import ResolvedProcess  # noqa: PLC0415
    from engine.versions import diff_definitions, load_version  # noqa: PLC0415

    with reported_errors():
        service = open_service()
        with service.database.read() as session:
            before = ResolvedProcess.model_validate(load_version(session, process, old).definition)
            after = ResolvedProcess.model_validate(load_version(session, process, new).definition)
    changes = diff_definitions(before, after)
    for change in changes:
        typer.echo(str(change))
    typer.echo(say(f"{count(len(changes), 'ændring', 'ændringer')}.", f"{count(len(changes), 'change', 'changes')}."))


@app.command("migrate-cases")
def migrate_cases(
    process: ProcessArgument,
    to: Annotated[int, typer.Option("--to", help="Målversion / target version.")],
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="GAMMEL=NY for en fase eller et trin; kan gentages / OLD=NEW; repeatable."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Vis kun, hvad der ville ske / only show the plan.")
    ] = False,
) -> None:
    """Flyt åbne sager til en anden version / move open cases to another version."""
    from engine.versions import migrate_cases as migrate  # noqa: PLC0415
    from engine.versions import parse_mapping  # noqa: PLC0415

    with reported_errors():
        service = open_service()
        pairs = parse_mapping(mapping or [])
        with service.database.write() as session:
            report = migrate(session, process, to, pairs, service.services.clock(), operator().name, dry_run=dry_run)
    for move in report.moves:
        phase = move.phase[0] if move.phase[0] == move.phase[1] else f"{move.phase[0]} → {move.phase[1]}"
        notes = [f"{old}→{new}" for old, new in move.renamed_steps.items()]
        notes += [f"+{step}" for step in move.added_steps]
        status = "; ".join(problem.get(state.language) for problem in move.problems) or ", ".join(notes) or "ok"
        typer.echo(f"{move.journal_number}  v{move.from_version} → v{report.to_version}  {phase}  {status}")
    if dry_run:
        refused = len(report.refused)
        typer.echo(
            say(
                f"Prøvekørsel: {len(report.moves) - refused} kan flyttes, {refused} mangler en oversættelse.",
                f"Dry run: {len(report.moves) - refused} can be moved, {refused} lack a mapping.",
            )
        )
        raise typer.Exit(1 if refused else 0)
    moved = len(report.moves)
    typer.echo(say(f"{count(moved, 'sag', 'sager')} flyttet.", f"{count(moved, 'case', 'cases')} moved."))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Opdatér databasens skema til nyeste version / migrate the database schema to the newest revision."""
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    from engine.storage.database import Database  # noqa: PLC0415
    from engine.storage.migrate import current_revision, upgrade  # noqa: PLC0415

    with reported_errors():
        database = Database(state.settings.database_url)
        try:
            upgrade(database)
        except OperationalError as error:
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            typer.echo(
                say(
                    f"Fejl: databasen kunne ikke opdateres: {reason}",
                    f"Error: the database could not be migrated: {reason}",
                ),
                err=True,
            )
            raise typer.Exit(1) from None
        typer.echo(
            say(
                f"Databasen er på version {current_revision(database)}.",
                f"The database is at revision {current_revision(database)}.",
            )
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Adresse at lytte på / address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (1-65535).", min=1, max=65535)] = 8000,
) -> None:
    """Start HTTP-API'et / serve the HTTP API."""
    import uvicorn  # noqa: PLC0415

    from api.app import create_app  # noqa: PLC0415

    configure_logging()
    with reported_errors():
        service = open_service()
        settings = state.settings
        started = time.perf_counter()
        # The cache has the definitions compiled at the last validate or deploy. If the files
        # have changed since, the processes are compiled from the database instead.
        cached = cached_only(settings.definitions_root, settings.cache_dir) if settings.cache_dir else None
        ready = service.warm_up(cached.compiled.values() if cached is not None and not cached.errors else ())
        elapsed = (time.perf_counter() - started) * 1000
        typer.echo(
            say(
                f"{ready} processer er klar efter {elapsed:.0f} ms.",
                f"{ready} processes ready after {elapsed:.0f} ms.",
            ),
            err=True,
        )
        application = create_app(service, settings)
    uvicorn.run(application, host=host, port=port, log_level="info")


# Tokens ----------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Argument(help="Brugernavn / user name.")],
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="Rolle; kan gentages; opretter brugeren, hvis den ikke findes / role; repeatable; "
            "creates the user if it does not exist.",
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Begræns nøglen: cases:read, cases:submit, cases:work, documents:write, admin; kan gentages / "
            "limit the token to these scopes; repeatable.",
        ),
    ] = None,
    label: Annotated[str | None, typer.Option(help="Beskrivelse / description.")] = None,
) -> None:
    """Opret en adgangsnøgle til en bruger; den vises kun én gang / create a token for a user, shown only once."""
    with reported_errors():
        token = open_service().create_token(user, role or None, label, scopes=scope or None)
    typer.echo(token)


@token_app.command("revoke")
def token_revoke(user: Annotated[str, typer.Argument(help="Brugernavn / user name.")]) -> None:
    """Tilbagekald alle en brugers nøgler / revoke all tokens of a user."""
    with reported_errors():
        revoked = open_service().revoke_tokens(user)
    typer.echo(
        say(f"{count(revoked, 'nøgle', 'nøgler')} tilbagekaldt.", f"{count(revoked, 'token', 'tokens')} revoked.")
    )


@token_app.command("demo")
def token_demo(
    output: Annotated[Path, typer.Option("--output", help="Fil til nøglerne / file for the tokens.")] = DEMO_TOKEN_FILE,
) -> None:
    """Opret demobrugerne med nye nøgler og skriv dem i var/demo-tokens.env / create demo users and tokens."""
    with reported_errors():
        service = open_service()
        administrator = operator()
        existing = {user["user"] for user in service.list_users(administrator)}
        lines = []
        for user, roles, teams, variable in DEMO_USERS:
            if user in existing:
                service.update_user(administrator, user, roles=roles, teams=teams, active=True)
            else:
                service.add_user(administrator, user, roles, teams)
            service.revoke_tokens(user)
            token = service.create_token(user, None, "demo")
            lines.append(f"SAGSFLOW_{variable}_TOKEN={token}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output.chmod(0o600)
    typer.echo(say("Demo-nøgler (kun til udvikling):", "Demo tokens (development only):"))
    for line in lines:
        typer.echo(f"  {line}")
    typer.echo(say(f"Gemt i {output}.", f"Saved in {output}."))


# Cases -----------------------------------------------------------------------------------


@case_app.command("list")
def case_list(
    process: Annotated[str | None, typer.Option(help="Kun denne proces / only this process.")] = None,
    phase: Annotated[str | None, typer.Option(help="Kun denne fase / only this phase.")] = None,
    status: Annotated[CaseStatusChoice | None, typer.Option(help="open eller/or closed.")] = None,
    limit: Annotated[int, typer.Option(help="Højst så mange / at most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")] = False,
) -> None:
    """Vis sager / list cases."""
    with reported_errors():
        result = open_service().list_cases(
            operator(),
            state.language,
            process_id=process,
            phase=phase,
            status=status.value if status else None,
            limit=limit,
        )
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    if not result["items"]:
        typer.echo(say("Ingen sager.", "No cases."))
        return
    for item in result["items"]:
        typer.echo(
            f"{item['id']:>6}  {item['journal_number']}  {item['process']:<20} {item['phase']['label']:<24} "
            f"{item['status']:<7} {item['title']}"
        )
    typer.echo(
        say(
            f"{len(result['items'])} af {count(result['total'], 'sag', 'sager')}.",
            f"{len(result['items'])} of {count(result['total'], 'case', 'cases')}.",
        )
    )


def _print_case(view: dict[str, Any]) -> None:
    process = view["process"]
    typer.echo(f"{view['journal_number']}  {view['title']}")
    typer.echo(f"  {say('Proces', 'Process')}: {process['title']} ({process['id']} v{process['version']})")
    status = {"open": say("åben", "open"), "closed": say("afsluttet", "closed")}.get(view["status"], view["status"])
    typer.echo(f"  {say('Fase', 'Phase')}: {view['phase']['label']}   Status: {status}   Version: {view['version']}")
    received, deadline = view["received_at"], view["processing_deadline"]
    typer.echo(f"  {say('Modtaget', 'Received')}: {received}   {say('Frist', 'Deadline')}: {deadline}")
    typer.echo(say("  Tjekliste:", "  Checklist:"))
    for step in view["checklist"]:
        marker = {"done": "[x]", "skipped": "[-]", "active": "[ ]"}.get(step["status"], "[?]")
        who = f" {step['completed_by']}" if step["completed_by"] else ""
        outcome = f" → {step['outcome']}" if step["outcome"] and step["outcome"] not in ("done",) else ""
        typer.echo(f"    {marker} {step['phase']}/{step['step']}: {step['label']}{outcome}{who}")
    typer.echo(say("  Dokumenter:", "  Documents:"))
    for document in view["documents"]:
        typer.echo(f"    {document['number']:>3}. {document['title']} ({document['status']})")


@case_app.command("show")
def case_show(
    case: Annotated[str, typer.Argument(help="Sagens id eller journalnummer / case id or journal number.")],
    as_json: Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")] = False,
) -> None:
    """Vis en sag med tjekliste og dokumenter / show a case with its checklist and documents."""
    with reported_errors():
        view = open_service().get_case(operator(), case, state.language)
    if as_json:
        typer.echo(json.dumps(view, ensure_ascii=False, indent=2))
    else:
        _print_case(view)


@outbox_app.command("list")
def outbox_list(
    status: Annotated[
        str | None, typer.Option(help="Kun denne status: pending, sent, failed / only this status.")
    ] = None,
    channel: Annotated[
        str | None, typer.Option(help="Kun denne kanal: digital_post, physical_mail, finance / only this channel.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Højst så mange / at most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")] = False,
) -> None:
    """Vis udbakkens breve og betalinger med status og forsøg / list the outbox's messages with status and attempts."""
    with reported_errors():
        if status not in (None, "pending", "sent", "failed"):
            raise fail(
                f"Ukendt status '{status}'; brug pending, sent eller failed.",
                f"Unknown status '{status}'; use pending, sent or failed.",
                code=2,
            )
        if channel not in (None, "digital_post", "physical_mail", "finance"):
            raise fail(
                f"Ukendt kanal '{channel}'; brug digital_post, physical_mail eller finance.",
                f"Unknown channel '{channel}'; use digital_post, physical_mail or finance.",
                code=2,
            )
        items = outbox_messages(open_service(), operator(), status=status, channel=channel, limit=limit)
    if as_json:
        typer.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    for item in items:
        attempts = count(item["attempts"], say("forsøg", "attempt"), say("forsøg", "attempts"))
        typer.echo(
            f"{item['id']:>6}  {item['case']['journal_number']}  {_outbox_subject(item)}  "
            f"{item['channel']}  {item['status']}  {attempts}"
        )
        if item["last_error"]:
            typer.echo(f"        {item['last_error']}")
    typer.echo(count(len(items), say("besked", "message"), say("beskeder", "messages")) + ".")


def _outbox_subject(item: dict[str, Any]) -> str:
    """Name what an outbox message sends: a letter's document number, or a booking's operation and amount."""
    payment = item.get("payment")
    if payment is None:
        return f"{say('dok.', 'doc.')} {item['document']['number']}"
    label = OPERATION_LABELS.get(payment["operation"])
    operation = label.get(state.language) if label is not None else str(payment["operation"])
    return f"{operation} {format_amount(Decimal(payment['amount']) / 100, state.language)}"


@outbox_app.command("retry")
def outbox_retry(
    message: Annotated[int, typer.Argument(min=1, help="Beskedens nummer fra 'outbox list' / the message id.")],
    as_user: OptionalUserOption = None,
) -> None:
    """Send et opgivet brev eller en opgivet betaling igen / queue a letter or payment the outbox gave up on again."""
    with reported_errors():
        service = open_service()
        view = queue_again(service, actor_for(service, as_user), message, state.language)
        report = service.dispatch_outbox()
    typer.echo(
        say(
            f"Besked {message} på sag {view['journal_number']} er lagt i udbakken igen; {report.sent} sendt nu.",
            f"Message {message} of case {view['journal_number']} is queued again; {report.sent} sent now.",
        )
    )


@outbox_app.command("dispatch")
def outbox_dispatch() -> None:
    """Send breve, der venter i udbakken / deliver letters waiting in the outbox."""
    configure_logging()
    with reported_errors():
        report = open_service().dispatch_outbox()
    typer.echo(
        say(
            f"{report.sent} sendt, {report.retried} prøves igen senere, {report.failed} opgivet.",
            f"{report.sent} sent, {report.retried} to retry later, {report.failed} given up.",
        )
    )
