"""Commands for case records: uploaded documents, notes and the audit trail.

    sagsflow document upload CASE FILE [--title TITLE]
    sagsflow document download CASE NUMBER [--output PATH] [--force]
    sagsflow note add CASE TEXT
    sagsflow note list CASE [--json]
    sagsflow audit verify [CASE]
    sagsflow audit show CASE [--json]

They run as the operator (`cli.common.operator`), who has the role admin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.common import OptionalUserOption, actor_for, count, fail, open_service, operator, reported_errors, say, state
from engine.records import MAX_UPLOAD_BYTES, CaseRecords, PayloadTooLarge, upload_limit_text
from engine.runtime.audit import STATE_KEY

document_app = typer.Typer(help="Sagens dokumenter / case documents.", no_args_is_help=True)
note_app = typer.Typer(help="Notater på sager / case notes.", no_args_is_help=True)
audit_app = typer.Typer(help="Sagernes revisionsspor / the cases' audit trail.", no_args_is_help=True)

CaseArgument = Annotated[str, typer.Argument(help="Sagens id eller journalnummer / case id or journal number.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sagsflow` application."""
    app.add_typer(document_app, name="document")
    app.add_typer(note_app, name="note")
    app.add_typer(audit_app, name="audit")


def _records() -> CaseRecords:
    return CaseRecords(open_service())


# Documents -------------------------------------------------------------------------------------


@document_app.command("upload")
def document_upload(
    case: CaseArgument,
    file: Annotated[Path, typer.Argument(help="Filen / the file: PDF, PNG, JPEG, TXT, CSV, DOCX, XLSX.")],
    title: Annotated[str | None, typer.Option(help="Dokumentets titel; standard: filnavnet / the title.")] = None,
    as_user: OptionalUserOption = None,
) -> None:
    """Journalisér en fil på en sag / file a document on a case."""
    if not file.is_file():
        raise fail(f"{file} findes ikke eller er ikke en fil.", f"{file} does not exist or is not a file.")
    with reported_errors():
        # Checked before reading, so a huge file is never loaded into memory.
        if file.stat().st_size > MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(upload_limit_text())
        records = _records()
        document = records.upload_document(
            actor_for(records.service, as_user), case, filename=file.name, content=file.read_bytes(), title=title
        )
    typer.echo(
        say(
            f"Dokument {document['number']} '{document['title']}' ({document['filename']}, "
            f"{document['size']} byte, {document['content_type']}) er journaliseret.",
            f"Document {document['number']} '{document['title']}' ({document['filename']}, "
            f"{document['size']} bytes, {document['content_type']}) was filed.",
        )
    )
    typer.echo(f"SHA-256: {document['sha256']}")


@document_app.command("download")
def document_download(
    case: CaseArgument,
    number: Annotated[int, typer.Argument(help="Dokumentets nummer / the document number.", min=1)],
    output: Annotated[
        Path | None, typer.Option(help="Filen, der skrives; standard: det gemte filnavn / the file to write.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overskriv en fil / overwrite an existing file.")] = False,
) -> None:
    """Gem et dokuments indhold i en fil / save a document's content to a file."""
    with reported_errors():
        document = _records().document_content(operator(), case, number)
    target = output or Path(document.filename)
    if target.exists() and not force:
        raise fail(
            f"{target} findes allerede; brug --force for at overskrive den.",
            f"{target} already exists; use --force to overwrite it.",
        )
    target.write_bytes(document.content)
    typer.echo(
        say(
            f"Skrev {len(document.content)} byte ({document.content_type}) til {target}.",
            f"Wrote {len(document.content)} bytes ({document.content_type}) to {target}.",
        )
    )


# Notes -----------------------------------------------------------------------------------------


@note_app.command("add")
def note_add(
    case: CaseArgument,
    text: Annotated[str, typer.Argument(help="Notatets tekst / the text of the note.")],
    as_user: OptionalUserOption = None,
) -> None:
    """Skriv et notat på en sag (offentlighedsloven § 13) / write a note on a case."""
    with reported_errors():
        records = _records()
        note = records.add_note(actor_for(records.service, as_user), case, text)
    typer.echo(
        say(
            f"Notat {note['id']} er skrevet på sagen (sagen er nu på version {note['case_version']}).",
            f"Note {note['id']} was written on the case (the case is now at version {note['case_version']}).",
        )
    )


@note_app.command("list")
def note_list(case: CaseArgument, as_json: JsonOption = False) -> None:
    """Vis en sags notater i rækkefølge / list a case's notes in order."""
    with reported_errors():
        notes = _records().list_notes(operator(), case, limit=500)
    if as_json:
        typer.echo(json.dumps(notes, ensure_ascii=False, indent=2))
        return
    for note in notes["items"]:
        typer.echo(f"{note['id']:>6}  {note['created_at']}  {note['created_by']}")
        for line in note["text"].splitlines():
            typer.echo(f"        {line}")
    typer.echo(say(f"{count(notes['total'], 'notat', 'notater')}.", f"{count(notes['total'], 'note', 'notes')}."))


# The audit trail -------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    case: Annotated[
        str | None, typer.Argument(help="Sagens id eller journalnummer; standard: alle sager / default: all cases.")
    ] = None,
) -> None:
    """Efterprøv revisionssporet / verify the audit trail; exit 1 on any problem.

    Checks the hash chain and its head on the case row, the case row against the state
    its newest event recorded, and every document against the hash filed with it.
    """
    with reported_errors():
        results = _records().verify_audit(operator(), case)
    broken = 0
    for result in results:
        report = result.report
        if report.problem is None:
            events_da = count(report.events, "hændelse", "hændelser")
            events_en = count(report.events, "event", "events")
            documents_da = count(report.documents, "dokument", "dokumenter")
            documents_en = count(report.documents, "document", "documents")
            typer.echo(
                say(
                    f"{result.journal_number}: OK ({events_da}, {documents_da})",
                    f"{result.journal_number}: OK ({events_en}, {documents_en})",
                )
            )
        else:
            broken += 1
            typer.echo(f"{result.journal_number}: {say('FEJL', 'ERROR')}: {report.problem.text.get(state.language)}")
    typer.echo(
        say(
            f"{count(len(results), 'sag', 'sager')} efterprøvet, {broken} med fejl.",
            f"{count(len(results), 'case', 'cases')} verified, {broken} with problems.",
        )
    )
    raise typer.Exit(1 if broken else 0)


@audit_app.command("show")
def audit_show(case: CaseArgument, as_json: JsonOption = False) -> None:
    """Vis en sags revisionsspor / show a case's audit trail."""
    with reported_errors():
        trail = _records().audit_trail(operator(), case, state.language)
    if as_json:
        typer.echo(json.dumps(trail, ensure_ascii=False, indent=2))
        return
    for event in trail["events"]:
        changed = ", ".join(sorted(key for key in event["changes"] if key != STATE_KEY)) or "-"
        typer.echo(f"{event['sequence']:>4}  {event['at']}  {event['actor']:<20} {event['command']:<16} {changed}")
    problem = trail["verification"]["problem"]
    typer.echo(f"{say('Hashkæde', 'Hash chain')}: {problem['message'] if problem else 'OK'}")
