"""Scheme cases (ordningssager) from the server's shell.

    sagsflow scheme members SCHEME [--all] [--limit N] [--json] [--as USER]
    sagsflow scheme import SCHEME FILE --as USER [--format csv|json]
    sagsflow scheme requests SCHEME --period YEAR --as USER [--reply-by DATE] [--chunk-size N] [--json]
    sagsflow scheme overview SCHEME [--period YEAR] [--json] [--as USER]
    sagsflow scheme export SCHEME --period YEAR [--format csv|xlsx] [--output FILE] [--force] [--as USER]

SCHEME is the scheme case's id or journal number. Importing members and sending requests
act as the registered user named with `--as`, who needs the role caseworker and must see
the scheme case; the other commands run as the operator without `--as`. The bulk run
shows a progress bar, and its letters are delivered by `sagsflow worker` or
`sagsflow outbox dispatch`.
"""

from __future__ import annotations

import json
from datetime import date
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
from engine.records import MAX_UPLOAD_BYTES, PayloadTooLarge, upload_limit_text

scheme_app = typer.Typer(help="Ordningssager / scheme cases.", no_args_is_help=True)

SchemeArgument = Annotated[str, typer.Argument(help="Ordningssagens id eller journalnummer / the scheme case.")]
ActingUserOption = Annotated[
    str,
    typer.Option(
        "--as",
        help="Den registrerede bruger, der handler; kræver rollen caseworker / "
        "the registered user to act as; needs the role caseworker.",
    ),
]
PeriodOption = Annotated[str, typer.Option("--period", help="Året, fx 2026 / the year, e.g. 2026.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")]


class ImportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


class ExportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


def register(app: typer.Typer) -> None:
    """Add the `scheme` command group to the `sagsflow` application."""
    app.add_typer(scheme_app, name="scheme")


@scheme_app.command("members")
def members(
    scheme: SchemeArgument,
    include_inactive: Annotated[
        bool, typer.Option("--all", help="Også medlemmer, der er udtrådt / include members that left.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Højst så mange / at most this many.")] = 100,
    as_json: JsonOption = False,
    as_user: OptionalUserOption = None,
) -> None:
    """Vis ordningens medlemmer / list the scheme's members."""
    from engine.runtime.schemes import Schemes  # noqa: PLC0415 - keeps `validate` fast

    with reported_errors():
        service = open_service()
        listed = Schemes(service).members(
            actor_for(service, as_user), scheme, include_inactive=include_inactive, limit=limit
        )
    if as_json:
        typer.echo(json.dumps(listed, ensure_ascii=False, indent=2))
        return
    for item in listed["items"]:
        state_text = say("aktiv", "active") if item["active"] else say("udtrådt", "left")
        case = item["case"] or "-"
        typer.echo(f"{item['key']:<24} {case:<14} {state_text:<8} {_member_name(item['data'])}")
    typer.echo(
        say(
            f"Viser {len(listed['items'])} af {count(listed['total'], 'medlem', 'medlemmer')}.",
            f"Showing {len(listed['items'])} of {count(listed['total'], 'member', 'members')}.",
        )
    )


def _member_name(data: dict[str, Any]) -> str:
    """Return the first text in a snapshot that looks like a name, for the member list."""
    for key in sorted(data):
        value = data[key]
        if key.endswith("name") and isinstance(value, str):
            return value
    return ""


@scheme_app.command("import")
def import_members(
    scheme: SchemeArgument,
    file: Annotated[Path, typer.Argument(help="CSV- eller JSON-fil med medlemmerne / the CSV or JSON file.")],
    as_user: ActingUserOption,
    file_format: Annotated[
        ImportFormat | None,
        typer.Option("--format", help="csv eller json; standard: filens endelse / csv or json; default: the suffix."),
    ] = None,
) -> None:
    """Indlæs medlemmer fra en fil; én fejl stopper det hele / import members from a file, all or nothing."""
    from engine.runtime.schemes import Schemes  # noqa: PLC0415

    chosen = file_format.value if file_format else file.suffix.lower().lstrip(".")
    if chosen not in ("csv", "json"):
        raise fail(
            f"Angiv --format csv eller json; endelsen '{file.suffix}' siger ikke, hvad filen er.",
            f"Give --format csv or json; the suffix '{file.suffix}' does not tell what the file is.",
            code=2,
        )
    if not file.is_file():
        raise fail(f"{file} findes ikke eller er ikke en fil.", f"{file} does not exist or is not a file.")
    with reported_errors():
        # Checked before reading, so a huge file is never loaded into memory.
        if file.stat().st_size > MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(upload_limit_text())
        service = open_service()
        result = Schemes(service).import_members(acting_user(service, as_user), scheme, file.read_bytes(), chosen)
    typer.echo(
        say(
            f"{count(result['rows'], 'række', 'rækker')} indlæst i {result['scheme']}: {result['added']} nye, "
            f"{result['updated']} opdateret.",
            f"{count(result['rows'], 'row', 'rows')} imported into {result['scheme']}: {result['added']} added, "
            f"{result['updated']} updated.",
        )
    )


class _Progress:
    """A progress bar that starts at the first report, when the number of members is known."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = typer.progressbar(length=total, label=say("Opretter anmodninger", "Creating requests"))
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@scheme_app.command("requests")
def run_requests(
    scheme: SchemeArgument,
    period: PeriodOption,
    as_user: ActingUserOption,
    reply_by: Annotated[
        str | None,
        typer.Option(
            "--reply-by",
            help="Svarfrist ÅÅÅÅ-MM-DD i stedet for ordningens / reply deadline YYYY-MM-DD in place of the scheme's.",
        ),
    ] = None,
    chunk_size: Annotated[
        int, typer.Option(min=1, max=5000, help="Sager pr. transaktion / cases per transaction.")
    ] = 500,
    as_json: JsonOption = False,
) -> None:
    """Send én anmodning til hvert aktivt medlem for perioden / send one request to every active member."""
    from engine.runtime.schemes import Schemes  # noqa: PLC0415

    deadline: date | None = None
    if reply_by is not None:
        try:
            deadline = date.fromisoformat(reply_by)
        except ValueError:
            raise fail(
                f"--reply-by skal være en dato som 2027-02-15, ikke '{reply_by}'.",
                f"--reply-by must be a date such as 2027-02-15, not '{reply_by}'.",
                code=2,
            ) from None
    progress = _Progress()
    try:
        with reported_errors():
            service = open_service()
            report = Schemes(service).run_requests(
                acting_user(service, as_user),
                scheme,
                period,
                reply_by=deadline,
                chunk_size=chunk_size,
                progress=None if as_json else progress,
            )
    finally:
        progress.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return
    typer.echo(
        say(
            f"{count(report.created, 'ny anmodning', 'nye anmodninger')} for {report.period} "
            f"({report.existing} fandtes i forvejen, {report.members} aktive medlemmer). "
            f"Svarfrist: {report.reply_by.isoformat()}.",
            f"{count(report.created, 'new request', 'new requests')} for {report.period} "
            f"({report.existing} existed already, {report.members} active members). "
            f"Reply by: {report.reply_by.isoformat()}.",
        )
    )
    if report.created:
        typer.echo(
            say(
                "Brevene sendes af 'sagsflow worker' eller 'sagsflow outbox dispatch'.",
                "The letters are sent by 'sagsflow worker' or 'sagsflow outbox dispatch'.",
            )
        )


@scheme_app.command("overview")
def overview(
    scheme: SchemeArgument,
    period: Annotated[
        str | None, typer.Option("--period", help="Vis også årets anmodninger / also list the year's requests.")
    ] = None,
    as_json: JsonOption = False,
    as_user: OptionalUserOption = None,
) -> None:
    """Vis anmodninger, svar og manglende svar pr. periode / show requests, replies and missing replies per period."""
    from engine.runtime.schemes import Schemes  # noqa: PLC0415

    with reported_errors():
        service = open_service()
        result = Schemes(service).overview(actor_for(service, as_user), scheme, state.language, period=period)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    members = result["members"]
    typer.echo(
        f"{result['scheme']['journal_number']} {result['scheme']['title']}: "
        + say(
            f"{members['active']} aktive medlemmer, {members['inactive']} udtrådte.",
            f"{members['active']} active members, {members['inactive']} left.",
        )
    )
    typer.echo(
        say(
            "Periode  Anmodninger  Svar  Mangler  Over fristen  Ikke anmodet  Svarfrist",
            "Period   Requests     Replies  Missing  Overdue  Not requested  Reply by",
        )
    )
    for row in result["periods"]:
        typer.echo(
            f"{row['period']:<8} {row['requests']:>11}  {row['replies']:>4}  {row['missing']:>7}  "
            f"{row['overdue']:>12}  {row['not_requested']:>12}  {row['reply_by']}"
        )
    for item in result.get("requests", {}).get("items", []):
        typer.echo(f"  {item['journal_number']}  {item['member']:<24} {item['status_label']:<28} {item['party']}")


@scheme_app.command("export")
def export(
    scheme: SchemeArgument,
    period: PeriodOption,
    file_format: Annotated[ExportFormat, typer.Option("--format", help="csv eller/or xlsx.")] = ExportFormat.CSV,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Filen; standard: eksportens navn i denne mappe / the file to write."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overskriv en eksisterende fil / overwrite a file.")] = False,
    as_user: OptionalUserOption = None,
) -> None:
    """Eksportér årets anmodninger og svar som CSV eller XLSX / export the year's requests and replies."""
    from engine.runtime.schemes import Schemes  # noqa: PLC0415

    with reported_errors():
        service = open_service()
        exported = Schemes(service).export(
            actor_for(service, as_user), scheme, period, file_format.value, state.language
        )
    target = output or Path(exported.filename)
    if target.exists() and not force:
        raise fail(
            f"{target} findes allerede; brug --force for at overskrive den.",
            f"{target} already exists; use --force to overwrite it.",
        )
    target.write_bytes(exported.content)
    typer.echo(say(f"Gemt i {target}.", f"Saved to {target}."))
