"""Actions that keep a grant round's pool case (puljesag) and its budget ledger up to date.

The pool case opens an account for its budget (`open_pool`). Each application joins the
round's open pool case (`join_pool`). The pool case ranks the round's assessed
applications by points and reserves the amounts of those within the budget
(`rank_pool`). An application's commitment, payout and closing move its amounts on
(`pool_commit`, `pool_pay`, `pool_release`). Every movement is a ledger entry in the
command's transaction (engine/runtime/ledger.py) and, for the finance system, an outbox
message with an idempotency key (engine/runtime/payments.py), so a refused movement
changes nothing and a payment is booked exactly once.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from pydantic import Field
from sqlalchemy import select

from engine.action_types import Action, ActionContext, FieldUse, Params
from engine.adapters.finance import Operation
from engine.definitions.model import Identifier
from engine.errors import Conflict, ProcessFault
from engine.i18n import Text
from engine.runtime import ledger
from engine.runtime.catalog import ProcessCatalog
from engine.runtime.payments import queue_finance
from engine.storage.tables import Case, CaseLink, CaseStatus, CaseStep, LedgerAccount, StepStatus

logger = logging.getLogger(__name__)

POOL_LINK = "pool"
# Navision Stat takes at most 50 characters of voucher text.
VOUCHER_TEXT_LENGTH = 50


def _pool_name(pool: Case) -> Text:
    return Text(f"Puljen {pool.journal_number} ({pool.title})", f"The pool {pool.journal_number} ({pool.title})")


def _pool_case(context: ActionContext, pool_field: str) -> tuple[Case, LedgerAccount]:
    """Load the application's pool case and its locked account; raise ProcessFault when it has none."""
    reference = context.value(pool_field)
    pool = (
        context.session.scalars(select(Case).where(Case.journal_number == reference)).one_or_none()
        if reference
        else None
    )
    account = ledger.find_account(context.session, ledger.POOL, str(reference), lock=True) if pool else None
    if pool is None or account is None:
        raise ProcessFault(
            Text(
                f"Sagen {context.case_reference} er ikke knyttet til en puljesag med et budget; intet er ændret.",
                f"The case {context.case_reference} is not linked to a pool case with a budget; nothing was changed.",
            )
        )
    return pool, account


def _voucher(
    pool: Case, context: ActionContext, amount: int, text: str, creditor: dict[str, str] | None = None
) -> dict[str, Any]:
    voucher: dict[str, Any] = {
        "account": str(pool.data.get("finance_account") or ""),
        "amount": amount,
        "dimension": pool.journal_number,
        "text": text[:VOUCHER_TEXT_LENGTH],
        "journal_number": context.case_reference,
    }
    if creditor is not None:
        voucher["creditor"] = creditor
    return voucher


def _book(
    context: ActionContext,
    pool: Case,
    account: LedgerAccount,
    movement: ledger.Movement,
    operation: Operation,
    key: str,
    voucher: dict[str, Any] | None,
) -> None:
    """Record a movement in the audit event and queue its booking in the finance system."""
    for entry in movement.describe(account.unit):
        context.record("ledger", {**entry, "pool": pool.journal_number})
    if voucher is not None:
        queue_finance(context.session, context.case.id, context.case_reference, context.now, operation, voucher, key)


# open_pool ---------------------------------------------------------------------------------------


class OpenPoolParams(Params):
    budget_field: Identifier


def _open_pool_uses(params: OpenPoolParams) -> list[FieldUse]:
    return [FieldUse("budget_field", params.budget_field, frozenset({"money"}), writes=False)]


def _open_pool(context: ActionContext, params: OpenPoolParams) -> str:
    budget = context.value(params.budget_field)
    if budget is None:
        raise ProcessFault(Text("Puljesagen har intet budget.", "The pool case has no budget."))
    ledger.open_account(
        context.session,
        ledger.POOL,
        context.case_reference,
        ledger.ORE,
        int(budget),
        context.now,
        case_id=context.case.id,
    )
    context.record("ledger", {"operation": "open", "amount": int(budget), "unit": ledger.ORE})
    return "opened"


# join_pool ---------------------------------------------------------------------------------------


class JoinPoolParams(Params):
    pool_process: str = Field(description="The process of the pool cases that this process's applications join.")
    pool_field: Identifier
    open_phase: Identifier = Field(default="round_open", description="The pool case's phase that takes applications.")
    opens_field: Identifier = Field(default="applications_open", description="The pool case's first day of the round.")
    closes_field: Identifier = Field(default="applications_close", description="The pool case's application deadline.")


def _join_pool_uses(params: JoinPoolParams) -> list[FieldUse]:
    return [FieldUse("pool_field", params.pool_field, frozenset({"text"}), writes=True)]


def _round_is_open(pool: Case, params: JoinPoolParams, today: date) -> bool:
    try:
        opens = date.fromisoformat(str(pool.data.get(params.opens_field)))
        closes = date.fromisoformat(str(pool.data.get(params.closes_field)))
    except ValueError:
        return False
    return opens <= today <= closes


def _join_pool(context: ActionContext, params: JoinPoolParams) -> str:
    rounds = context.session.scalars(
        select(Case)
        .where(
            Case.process_id == params.pool_process,
            Case.status == CaseStatus.OPEN,
            Case.phase == params.open_phase,
        )
        .order_by(Case.id)
    )
    pool = next((candidate for candidate in rounds if _round_is_open(candidate, params, context.today)), None)
    if pool is None:
        raise Conflict(
            Text(
                "Der er ingen åben ansøgningsrunde for ordningen i dag, så ansøgningen er ikke modtaget.",
                "There is no application round of the scheme open today, so the application was not received.",
            ),
            code="no_open_round",
            hint=Text(
                "Se ordningens side for datoen for næste ansøgningsrunde.",
                "See the scheme's page for the date of the next application round.",
            ),
        )
    context.session.add(
        CaseLink(
            case_id=context.case.id,
            linked_case_id=pool.id,
            kind=POOL_LINK,
            created_at=context.now,
            created_by=context.actor.name,
        )
    )
    context.set_value(params.pool_field, pool.journal_number)
    return "joined"


# rank_pool ---------------------------------------------------------------------------------------


class RankPoolParams(Params):
    ranking_step: Identifier = Field(description="The applications' step that records the ranking.")
    outcome_field: Identifier = Field(description="The applications' enum field set to within_budget/outside_budget.")
    score_field: Identifier
    amount_field: Identifier
    pending_phases: list[Identifier] = Field(
        min_length=1, description="Phases of an application that is not yet assessed; ranking waits for them."
    )
    summary_field: Identifier
    ranked_field: Identifier | None = Field(
        default=None,
        description="The applications' boolean system field set before their ranking step is completed, so that "
        "a check on that step can keep caseworkers from ranking an application by hand.",
    )


def _rank_uses(params: RankPoolParams) -> list[FieldUse]:
    return [FieldUse("summary_field", params.summary_field, frozenset({"text"}), writes=True)]


def _linked_applications(context: ActionContext) -> list[Case]:
    query = (
        select(Case)
        .join(CaseLink, CaseLink.case_id == Case.id)
        .where(CaseLink.linked_case_id == context.case.id, CaseLink.kind == POOL_LINK)
        .order_by(Case.id)
        .execution_options(populate_existing=True)
    )
    if context.session.get_bind().dialect.name == "postgresql":
        # Lock every application before the account, in id order, as commands lock a case first.
        query = query.with_for_update(of=Case)
    return list(context.session.scalars(query))


def _waiting_at(context: ActionContext, application: Case, step_id: str) -> bool:
    return (
        context.session.scalars(
            select(CaseStep.id).where(
                CaseStep.case_id == application.id,
                CaseStep.phase == application.phase,
                CaseStep.step_id == step_id,
                CaseStep.status == StepStatus.ACTIVE,
            )
        ).first()
        is not None
    )


def _rank_pool(context: ActionContext, params: RankPoolParams) -> str:
    from engine.runtime.commands import load_command  # noqa: PLC0415 - commands import the action registry

    # A catalog of this call only: version ids are per database, so no cache may outlive the session.
    catalog = ProcessCatalog()
    applications = _linked_applications(context)
    pending = [
        case.journal_number
        for case in applications
        if case.status == CaseStatus.OPEN and case.phase in params.pending_phases
    ]
    if pending:
        listed = ", ".join(pending[:20]) + (" …" if len(pending) > 20 else "")
        raise Conflict(
            Text(
                f"{len(pending)} {'ansøgning' if len(pending) == 1 else 'ansøgninger'} i runden er endnu ikke "
                f"vurderet ({listed}); puljen kan først "
                "prioriteres, når alle er vurderet. Intet er ændret.",
                f"{len(pending)} {'application' if len(pending) == 1 else 'applications'} of the round "
                f"{'is' if len(pending) == 1 else 'are'} not yet assessed ({listed}); the pool can be "
                "ranked only when all are assessed. Nothing was changed.",
            ),
            code="round_not_assessed",
            hint=Text("Afslut vurderingen af ansøgningerne først.", "Finish assessing the applications first."),
        )
    candidates = [case for case in applications if _waiting_at(context, case, params.ranking_step)]
    # Most points first; on equal points the application received first.
    candidates.sort(key=lambda case: (-int(case.data.get(params.score_field) or 0), case.received_at, case.id))

    account = ledger.find_account(context.session, ledger.POOL, context.case_reference, lock=True)
    if account is None:
        raise ProcessFault(Text("Puljesagen har intet budget.", "The pool case has no budget."))
    available = ledger.balances(context.session, account).available
    within = outside = 0
    reserved_total = 0
    for position, application in enumerate(candidates, start=1):
        amount = int(application.data.get(params.amount_field) or 0)
        fits = 0 < amount <= available
        command = load_command(
            context.session,
            context.services,
            catalog.by_version_id(context.session, application.process_version_id)[1],
            application,
            context.actor,
            "pool_ranking",
        )
        if fits:
            movement = ledger.reserve(
                context.session,
                account,
                application.id,
                amount,
                context.actor.name,
                context.now,
                what=_pool_name(context.case),
                reference=f"finance:reserve:{application.journal_number}",
            )
            available -= amount
            reserved_total += amount
            within += 1
            _book(
                command,
                context.case,
                account,
                movement,
                "reserve",
                f"reserve:{application.journal_number}",
                _voucher(context.case, command, amount, f"Reservation {application.journal_number}"),
            )
        else:
            outside += 1
        if params.ranked_field is not None:
            command.set_value(params.ranked_field, True)
        command.complete_task(
            params.ranking_step, {params.outcome_field: "within_budget" if fits else "outside_budget"}
        )
        command.finish({"pool_ranking": {"pool": context.case_reference, "position": position}})
        context.record(
            "ranking",
            {
                "case": application.journal_number,
                "position": position,
                "score": application.data.get(params.score_field),
                "amount": amount,
                "within_budget": fits,
            },
        )
    summary = Text(
        f"{len(candidates)} ansøgninger prioriteret: {within} inden for budgettet "
        f"({ledger.format_quantity(ledger.ORE, reserved_total)} reserveret), {outside} uden for.",
        f"{len(candidates)} applications ranked: {within} within the budget "
        f"({ledger.format_quantity(ledger.ORE, reserved_total, 'en')} reserved), {outside} outside.",
    )
    # The summary is a case field, kept in the pool case's own language.
    context.set_value(params.summary_field, summary.en if context.case.language == "en" else summary.da)
    logger.info("Pool %s ranked %d applications", context.case_reference, len(candidates))
    return "ranked"


# pool_commit, pool_pay, pool_release ---------------------------------------------------------------


class PoolCommitParams(Params):
    pool_field: Identifier
    amount_field: Identifier


def _commit_uses(params: PoolCommitParams) -> list[FieldUse]:
    return [
        FieldUse("pool_field", params.pool_field, frozenset({"text"}), writes=False),
        FieldUse("amount_field", params.amount_field, frozenset({"money"}), writes=False),
    ]


def _pool_commit(context: ActionContext, params: PoolCommitParams) -> str:
    pool, account = _pool_case(context, params.pool_field)
    amount = int(context.value(params.amount_field) or 0)
    movement = ledger.commit(
        context.session,
        account,
        context.case.id,
        amount,
        context.actor.name,
        context.now,
        what=_pool_name(pool),
        reference=f"finance:commit:{context.case_reference}",
    )
    _book(
        context,
        pool,
        account,
        movement,
        "commit",
        f"commit:{context.case_reference}",
        _voucher(pool, context, amount, f"Tilsagn {context.case_reference}"),
    )
    return "committed"


class PoolPayParams(Params):
    pool_field: Identifier
    amount_field: Identifier
    creditor_field: Identifier = Field(description="The CVR number the payout goes to (its NemKonto).")
    creditor_name_field: Identifier


def _pay_uses(params: PoolPayParams) -> list[FieldUse]:
    return [
        FieldUse("pool_field", params.pool_field, frozenset({"text"}), writes=False),
        FieldUse("amount_field", params.amount_field, frozenset({"money"}), writes=False),
        FieldUse("creditor_field", params.creditor_field, frozenset({"cvr"}), writes=False),
        FieldUse("creditor_name_field", params.creditor_name_field, frozenset({"text"}), writes=False),
    ]


def _pool_pay(context: ActionContext, params: PoolPayParams) -> str:
    pool, account = _pool_case(context, params.pool_field)
    amount = int(context.value(params.amount_field) or 0)
    creditor_number = context.value(params.creditor_field)
    if not creditor_number:
        raise Conflict(
            Text(
                "Udbetalingen kræver modtagerens CVR-nummer (NemKonto); intet er ændret.",
                "The payout needs the recipient's CVR number (NemKonto); nothing was changed.",
            ),
            code="no_creditor",
            field=params.creditor_field,
        )
    movement = ledger.pay(
        context.session,
        account,
        context.case.id,
        amount,
        context.actor.name,
        context.now,
        what=_pool_name(pool),
        reference=f"finance:pay:{context.case_reference}",
    )
    creditor = {
        "id_type": "CVR",
        "id": str(creditor_number),
        "name": str(context.value(params.creditor_name_field) or ""),
    }
    _book(
        context,
        pool,
        account,
        movement,
        "pay",
        f"pay:{context.case_reference}",
        _voucher(pool, context, amount, f"Udbetaling {context.case_reference}", creditor),
    )
    return "paid"


class PoolReleaseParams(Params):
    pool_field: Identifier


def _release_uses(params: PoolReleaseParams) -> list[FieldUse]:
    return [FieldUse("pool_field", params.pool_field, frozenset({"text"}), writes=False)]


def _pool_release(context: ActionContext, params: PoolReleaseParams) -> str:
    if not context.value(params.pool_field):
        return "nothing_to_release"
    pool, account = _pool_case(context, params.pool_field)
    movement = ledger.release(
        context.session,
        account,
        context.case.id,
        context.actor.name,
        context.now,
        reference=f"finance:release:{context.case_reference}",
    )
    amount = sum(entry.amount for entry in movement.entries)
    if not amount:
        return "nothing_to_release"
    _book(
        context,
        pool,
        account,
        movement,
        "release",
        f"release:{context.case_reference}",
        _voucher(pool, context, amount, f"Frigivelse {context.case_reference}"),
    )
    return "released"


# close_pool --------------------------------------------------------------------------------------


class ClosePoolParams(Params):
    pass


def _close_uses(params: ClosePoolParams) -> list[FieldUse]:
    return []


def _close_pool(context: ActionContext, params: ClosePoolParams) -> str:
    still_open = [case.journal_number for case in _linked_applications(context) if case.status == CaseStatus.OPEN]
    if still_open:
        listed = ", ".join(still_open[:20]) + (" …" if len(still_open) > 20 else "")
        raise Conflict(
            Text(
                f"{len(still_open)} af rundens ansøgninger er ikke afsluttet ({listed}), så runden kan ikke lukkes. "
                "Intet er ændret.",
                f"{len(still_open)} applications of the round are not closed ({listed}), so the round cannot be "
                "closed. Nothing was changed.",
            ),
            code="round_has_open_cases",
            hint=Text(
                "Afslut ansøgningerne først: deres tilsagn skal være udbetalt eller bortfaldet.",
                "Close the applications first: their commitments must be paid out or have lapsed.",
            ),
        )
    return "closed"


LEDGER_ACTIONS: tuple[Action, ...] = (
    Action("open_pool", OpenPoolParams, _open_pool, _open_pool_uses, ("opened",)),
    Action("join_pool", JoinPoolParams, _join_pool, _join_pool_uses, ("joined",)),
    Action("rank_pool", RankPoolParams, _rank_pool, _rank_uses, ("ranked",)),
    Action("pool_commit", PoolCommitParams, _pool_commit, _commit_uses, ("committed",)),
    Action("pool_pay", PoolPayParams, _pool_pay, _pay_uses, ("paid",)),
    Action("pool_release", PoolReleaseParams, _pool_release, _release_uses, ("released", "nothing_to_release")),
    Action("close_pool", ClosePoolParams, _close_pool, _close_uses, ("closed",)),
)
