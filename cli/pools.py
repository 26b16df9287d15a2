"""Commands for pool cases (puljesager): the budget and ranking, the ledger, and reconciliation.

    sagsflow pool show CASE [--json]
    sagsflow pool ledger CASE [--json]
    sagsflow pool reconcile CASE [--json]

They only read. `reconcile` exits with status 1 when anything disagrees, so a scheduled
job can raise the alarm.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cli.common import OptionalUserOption, actor_for, count, open_service, reported_errors, say, state
from engine.runtime.ledger import ORE, format_quantity

pool_app = typer.Typer(help="Puljesager og deres bogføring / pool cases and their ledger.", no_args_is_help=True)

CaseArgument = Annotated[str, typer.Argument(help="Puljesagens id eller journalnummer / the pool case.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sagsflow` application."""
    app.add_typer(pool_app, name="pool")


def _pools() -> Any:
    from engine.pools import PoolLedger  # noqa: PLC0415 - keeps `validate` fast

    return PoolLedger(open_service())


def _kr(amount: int | None) -> str:
    return "" if amount is None else format_quantity(ORE, amount, state.language)


@pool_app.command("show")
def pool_show(case: CaseArgument, as_json: JsonOption = False, as_user: OptionalUserOption = None) -> None:
    """Vis puljens budget og ansøgninger / show the pool's budget and applications."""
    with reported_errors():
        pools = _pools()
        view = pools.overview(actor_for(pools.service, as_user), case, state.language)
    if as_json:
        typer.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    shown = view["shown"]
    typer.echo(f"{view['case']}  {view['title']}  ({view['phase']})")
    typer.echo(
        say(
            f"Budget {shown['budget']}: til rådighed {shown['available']}, reserveret {shown['reserved']}, "
            f"tilsagt {shown['committed']}, udbetalt {shown['paid']}",
            f"Budget {shown['budget']}: available {shown['available']}, reserved {shown['reserved']}, "
            f"committed {shown['committed']}, paid {shown['paid']}",
        )
    )
    for row in view["applications"]:
        typer.echo(
            f"  {row['case']}  {say('point', 'points')} {row['score'] if row['score'] is not None else '-':>3}  "
            f"{say('ansøgt', 'applied')} {_kr(row['requested'])}  "
            f"{say('reserveret', 'reserved')} {_kr(row['reserved'])}  {say('tilsagt', 'committed')} "
            f"{_kr(row['committed'])}  {say('udbetalt', 'paid')} {_kr(row['paid'])}  {row['phase']}"
        )


@pool_app.command("ledger")
def pool_ledger(case: CaseArgument, as_json: JsonOption = False, as_user: OptionalUserOption = None) -> None:
    """Vis puljens bevægelser / list the pool's ledger movements."""
    with reported_errors():
        pools = _pools()
        items = pools.entries(actor_for(pools.service, as_user), case)
    if as_json:
        typer.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    for item in items:
        typer.echo(
            f"{item['at'][:19]}  {item['case']}  {item['operation']:<8} {_kr(item['amount']):>18}  "
            f"{item['from']} -> {item['to']}  {item['reference'] or ''}"
        )


@pool_app.command("reconcile")
def pool_reconcile(case: CaseArgument, as_json: JsonOption = False, as_user: OptionalUserOption = None) -> None:
    """Afstem puljen pr. sag og pr. transaktion / reconcile the pool per case and per transaction."""
    with reported_errors():
        pools = _pools()
        report = pools.reconcile(actor_for(pools.service, as_user), case, state.language)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for problem in report["account"]["problems"]:
            typer.echo(f"{report['case']}: {problem}")
        for row in (*report["cases"], *report["transactions"]):
            label = row.get("reference") or row["case"]
            for problem in row["problems"]:
                typer.echo(f"{label}: {problem}")
        cases = len(report["cases"])
        transactions = len(report["transactions"])
        paid = _kr(report["account"]["paid"])
        typer.echo(
            say(
                f"{'Afstemt' if report['ok'] else 'Uoverensstemmelser fundet'}: {count(cases, 'sag', 'sager')}, "
                f"{count(transactions, 'transaktion', 'transaktioner')}, udbetalt {paid}",
                f"{'Reconciled' if report['ok'] else 'Mismatches found'}: {count(cases, 'case', 'cases')}, "
                f"{count(transactions, 'transaction', 'transactions')}, paid {paid}",
            )
        )
    if not report["ok"]:
        raise typer.Exit(1)
