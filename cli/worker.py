"""The background worker (`sagsflow worker`), overdue work (`sagsflow overdue`) and physical mail.

`sagsflow physical-mail` lists the letters the worker sent as print jobs instead of by digital post.
"""

from __future__ import annotations

import json
import signal
from enum import StrEnum
from types import FrameType
from typing import Annotated, Any

import typer

from cli.common import configure_logging, count, open_service, operator, reported_errors, say, state


def worker(
    once: Annotated[bool, typer.Option("--once", help="Kør én runde og stop / run one round and stop.")] = False,
    interval: Annotated[
        float,
        typer.Option(help="Sekunder mellem runderne / seconds between rounds.", min=0.1, max=3600),
    ] = 5.0,
    name: Annotated[
        str | None,
        typer.Option(
            help="Navn i leveringsloggen; standard er værtsnavn:pid / name in the delivery log; default host name:pid."
        ),
    ] = None,
) -> None:
    """Send breve, udløs timere, luk høringer og eskalér / deliver letters, fire timers, close hearings, escalate."""
    from engine.runtime.worker import Worker  # noqa: PLC0415 - keeps `validate` fast

    configure_logging()
    with reported_errors():
        service = open_service()
        runner = Worker(service.database, service.services, service.catalog, name=name)

    def stop(signal_number: int, _frame: FrameType | None) -> None:
        # Finish the item in hand, then stop; a second signal ends the process at once.
        signal.signal(signal_number, signal.SIG_DFL)
        runner.stop()

    # The previous handlers come back afterwards, for a caller that goes on running (a test).
    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with reported_errors():
            runner.run(interval, once=once)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def overdue(
    limit: Annotated[int, typer.Option(help="Højst så mange af hver slags / at most this many of each.", min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")] = False,
) -> None:
    """Vis sager og trin over fristen / list overdue cases and steps."""
    from engine.runtime.worker import list_overdue  # noqa: PLC0415

    with reported_errors():
        service = open_service()
        actor = operator()
        with service.database.read() as session:
            result = list_overdue(
                session,
                service.catalog,
                service.services.clock(),
                state.language,
                lambda case: service.may_see(actor, case),
                limit,
            )
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    _print_overdue(result)


def _print_overdue(result: dict[str, Any]) -> None:
    cases, steps = result["cases"], result["steps"]
    if not cases and not steps:
        typer.echo(say("Intet er over fristen.", "Nothing is overdue."))
        return
    if cases:
        typer.echo(say("Sager over sagsbehandlingsfristen:", "Cases past their processing deadline:"))
        for item in cases:
            days = count(item["days_overdue"], say("dag", "day"), say("dage", "days"))
            escalated = say(" (eskaleret)", " (escalated)") if item["escalated_at"] else ""
            typer.echo(
                f"  {item['journal_number']}  {item['processing_deadline'][:10]}  +{days:<9} "
                f"{item['phase']['label']:<24} {item['assignee'] or '-':<12} {item['title']}{escalated}"
            )
    if steps:
        typer.echo(say("Trin over fristen:", "Steps past their deadline:"))
        for item in steps:
            days = count(item["days_overdue"], say("dag", "day"), say("dage", "days"))
            escalated = say(" (eskaleret)", " (escalated)") if item["escalated_at"] else ""
            typer.echo(
                f"  {item['case']['journal_number']}  {item['due_at'][:10]}  +{days:<9} "
                f"{item['label']:<32} {item['assignee'] or '-':<12} {item['status']}{escalated}"
            )
    typer.echo(
        say(
            f"{count(len(cases), 'sag', 'sager')} og {count(len(steps), 'trin', 'trin')} over fristen.",
            f"{count(len(cases), 'case', 'cases')} and {count(len(steps), 'step', 'steps')} overdue.",
        )
    )


class MailStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


def physical_mail(
    status: Annotated[
        MailStatus | None,
        typer.Option(help="Kun breve med denne status / only letters with this status."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Højst så mange breve / at most this many letters.", min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")] = False,
) -> None:
    """Vis breve til fysisk post / list the letters sent by physical mail."""
    from engine.runtime.outbox import list_physical_mail  # noqa: PLC0415

    with reported_errors():
        service = open_service()
        with service.database.read() as session:
            items = list_physical_mail(session, None, status=status.value if status else None, limit=limit)
    if as_json:
        typer.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        typer.echo(say("Ingen breve til fysisk post.", "No letters for physical mail."))
        return
    labels = {
        "pending": say("venter", "pending"),
        "sent": say("sendt til print", "sent to print"),
        "failed": say("opgivet", "given up"),
    }
    for item in items:
        recipient = item["recipient"]
        identity = f"{recipient['id_type']} {recipient['id']}" if recipient["id"] else recipient["id_type"]
        typer.echo(
            f"  {item['case']['journal_number']}  {item['document']['number']:>3}. {item['document']['title']:<40} "
            f"{recipient['name']} ({identity})  {labels.get(item['status'], item['status'])}"
        )
    typer.echo(say(f"{count(len(items), 'brev', 'breve')}.", f"{count(len(items), 'letter', 'letters')}."))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sagsflow` application."""
    app.command("worker")(worker)
    app.command("overdue")(overdue)
    app.command("physical-mail")(physical_mail)
