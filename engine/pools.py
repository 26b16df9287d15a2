"""The pool case (puljesag) seen from outside: its budget, its applications and their reconciliation.

`PoolLedger` works on a `Sagsflow` engine and only reads. The ledger is written by the
actions in engine/ledger_actions.py while the pool case and its applications run.

Reconciliation checks three things and reports every mismatch it finds:

- the account: the buckets add up to the budget, and none is negative;
- per case: what the ledger holds for an application agrees with the application's own
  data (the committed amount, the approved payout, a refusal or a closed case);
- per transaction: every ledger movement booked with a finance reference has its outbox
  message with the same amount, and every sent message has the finance system's receipt
  for the same amount.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.auth import STAFF_ROLES, Actor
from engine.errors import Forbidden, NotFound
from engine.i18n import Language, Text
from engine.ledger_actions import POOL_LINK
from engine.runtime import ledger
from engine.service import Sagsflow
from engine.storage.tables import Case, CaseLink, CaseStatus, CaseStep, LedgerAccount, LedgerEntry, OutboxMessage


def _require_staff(actor: Actor) -> None:
    if not any(actor.has(role) for role in STAFF_ROLES):
        raise Forbidden(
            Text("Kun medarbejdere kan se en puljesag.", "Only staff can see a pool case."), code="missing_role"
        )


def _no_pool(reference: str) -> NotFound:
    return NotFound(
        Text(
            f"Sagen {reference} er ikke en puljesag med et budget.",
            f"The case {reference} is not a pool case with a budget.",
        ),
        code="not_a_pool",
        hint=Text(
            "Angiv puljesagens journalnummer; ansøgningernes felt 'pool_case' viser det.",
            "Give the pool case's journal number; the applications' field 'pool_case' shows it.",
        ),
    )


def _step_outcomes(session: Session, case_ids: list[int]) -> dict[int, dict[str, str]]:
    """Map each case to the newest outcome of each of its steps."""
    outcomes: dict[int, dict[str, str]] = defaultdict(dict)
    rows = session.execute(
        select(CaseStep.case_id, CaseStep.step_id, CaseStep.outcome, CaseStep.status)
        .where(CaseStep.case_id.in_(case_ids))
        .order_by(CaseStep.id)
    )
    for case_id, step_id, outcome, status in rows:
        outcomes[case_id][step_id] = outcome or status
    return outcomes


class PoolLedger:
    def __init__(self, service: Sagsflow) -> None:
        self.service = service

    def _load(self, session: Session, actor: Actor, case_ref: str | int) -> tuple[Case, LedgerAccount, list[Case]]:
        _require_staff(actor)
        pool = self.service.load_case(session, actor, case_ref)
        account = ledger.find_account(session, ledger.POOL, pool.journal_number)
        if account is None:
            raise _no_pool(pool.journal_number)
        applications = list(
            session.scalars(
                select(Case)
                .join(CaseLink, CaseLink.case_id == Case.id)
                .where(CaseLink.linked_case_id == pool.id, CaseLink.kind == POOL_LINK)
                .order_by(Case.id)
            )
        )
        return pool, account, applications

    def overview(self, actor: Actor, case_ref: str | int, language: Language) -> dict[str, Any]:
        """Return the pool's budget and balances, and its applications ranked by points with their amounts."""
        with self.service.database.read() as session:
            pool, account, applications = self._load(session, actor, case_ref)
            totals = ledger.balances(session, account)
            entries = ledger.entries_by_case(session, account)
            rows = []
            for application in applications:
                held = ledger.case_balances(session, account, application.id)
                released = sum(
                    entry.amount for entry in entries.get(application.id, []) if entry.operation == "release"
                )
                rows.append(
                    {
                        "case": application.journal_number,
                        "title": application.title,
                        "status": application.status,
                        "phase": application.phase,
                        "score": application.data.get("score"),
                        "requested": application.data.get("requested_amount"),
                        "ranking": application.data.get("ranking_outcome"),
                        "outcome": application.data.get("grant_outcome"),
                        **{bucket: amount for bucket, amount in held.as_dict().items() if bucket != "available"},
                        "released": released,
                    }
                )
            rows.sort(key=lambda row: (-int(row["score"] or 0), str(row["case"])))
            return {
                "case": pool.journal_number,
                "title": pool.title,
                "phase": pool.phase,
                "unit": "øre",
                "budget": account.total,
                "balances": totals.as_dict(),
                "applications": rows,
                "shown": {
                    "budget": ledger.format_quantity(account.unit, account.total, language),
                    **{
                        bucket: ledger.format_quantity(account.unit, amount, language)
                        for bucket, amount in totals.as_dict().items()
                    },
                },
            }

    def entries(self, actor: Actor, case_ref: str | int) -> list[dict[str, Any]]:
        """List every movement of the pool's ledger, oldest first."""
        with self.service.database.read() as session:
            _, account, applications = self._load(session, actor, case_ref)
            names = {case.id: case.journal_number for case in applications}
            rows = session.scalars(
                select(LedgerEntry).where(LedgerEntry.account_id == account.id).order_by(LedgerEntry.id)
            )
            return [
                {
                    "id": entry.id,
                    "at": entry.at.isoformat(),
                    "case": names.get(entry.case_id, str(entry.case_id)),
                    "operation": entry.operation,
                    "amount": entry.amount,
                    "from": entry.from_bucket,
                    "to": entry.to_bucket,
                    "reference": entry.reference,
                    "actor": entry.actor,
                }
                for entry in rows
            ]

    def reconcile(self, actor: Actor, case_ref: str | int, language: Language) -> dict[str, Any]:
        """Compare the ledger with the applications and the finance bookings; `ok` is False on any mismatch."""
        with self.service.database.read() as session:
            pool, account, applications = self._load(session, actor, case_ref)
            problems: list[str] = []
            totals = ledger.balances(session, account)
            if sum(totals.as_dict().values()) != account.total:
                problems.append(
                    Text(
                        "Puljens beholdninger giver ikke budgettet tilsammen.",
                        "The pool's buckets do not add up to the budget.",
                    ).get(language)
                )
            for bucket, amount in totals.as_dict().items():
                if amount < 0:
                    problems.append(
                        Text(
                            f"Puljens beholdning '{bucket}' er negativ.", f"The pool's bucket '{bucket}' is negative."
                        ).get(language)
                    )
            outcomes = _step_outcomes(session, [case.id for case in applications])
            cases = [
                self._reconcile_case(session, account, case, outcomes.get(case.id, {}), language)
                for case in applications
            ]
            transactions = self._reconcile_transactions(session, account, applications, language)
            ok = not problems and all(row["ok"] for row in cases) and all(row["ok"] for row in transactions)
            return {
                "case": pool.journal_number,
                "ok": ok,
                "account": {"budget": account.total, **totals.as_dict(), "problems": problems},
                "cases": cases,
                "transactions": transactions,
            }

    @staticmethod
    def _reconcile_case(
        session: Session, account: LedgerAccount, case: Case, outcomes: dict[str, str], language: Language
    ) -> dict[str, Any]:
        held = ledger.case_balances(session, account, case.id)
        problems: list[Text] = []
        for bucket in ("reserved", "committed", "paid"):
            if getattr(held, bucket) < 0:
                problems.append(Text(f"Beholdningen '{bucket}' er negativ.", f"The bucket '{bucket}' is negative."))
        committed_amount = int(case.data.get("committed_amount") or 0)
        approved_payout = int(case.data.get("payout_approved_amount") or 0)
        if outcomes.get("commit_funds") == "committed":
            # What was committed is still committed, paid out, or released when the rest lapsed.
            lapsed = sum(
                entry.amount
                for entry in session.scalars(
                    select(LedgerEntry).where(
                        LedgerEntry.account_id == account.id,
                        LedgerEntry.case_id == case.id,
                        LedgerEntry.operation == "release",
                        LedgerEntry.from_bucket == "committed",
                    )
                )
            )
            if held.committed + held.paid + lapsed != committed_amount:
                problems.append(
                    Text(
                        "Det bogførte tilsagn svarer ikke til sagens tilsagnsbeløb.",
                        "The booked commitment does not match the case's committed amount.",
                    )
                )
        elif held.committed or held.paid:
            problems.append(
                Text(
                    "Puljen har bogført et tilsagn, som sagen ikke har givet.",
                    "The pool has booked a commitment that the case has not made.",
                )
            )
        expected_paid = approved_payout if outcomes.get("pay_out") == "paid" else 0
        if held.paid != expected_paid:
            problems.append(
                Text(
                    "Det bogførte udbetalte beløb svarer ikke til sagens godkendte udbetaling.",
                    "The amount booked as paid does not match the case's approved payout.",
                )
            )
        if (case.status == CaseStatus.CLOSED or case.data.get("grant_outcome") == "refusal") and (
            held.reserved or (case.status == CaseStatus.CLOSED and held.committed)
        ):
            problems.append(
                Text(
                    "Sagen er afsluttet eller har fået afslag, men holder stadig et beløb i puljen.",
                    "The case is closed or refused but still holds an amount in the pool.",
                )
            )
        return {
            "case": case.journal_number,
            "status": case.status,
            "committed_amount": committed_amount or None,
            "payout_approved_amount": approved_payout or None,
            "ledger": {bucket: amount for bucket, amount in held.as_dict().items() if bucket != "available"},
            "ok": not problems,
            "problems": [problem.get(language) for problem in problems],
        }

    def _reconcile_transactions(
        self, session: Session, account: LedgerAccount, applications: list[Case], language: Language
    ) -> list[dict[str, Any]]:
        booked: dict[str, int] = defaultdict(int)
        case_of: dict[str, int] = {}
        for entry in session.scalars(
            select(LedgerEntry).where(LedgerEntry.account_id == account.id, LedgerEntry.reference.is_not(None))
        ):
            reference = str(entry.reference)
            booked[reference] += entry.amount
            case_of[reference] = entry.case_id
        names = {case.id: case.journal_number for case in applications}
        messages = {
            message.idempotency_key: message
            for message in session.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key.in_(list(booked))))
        }
        finance = self.service.services.finance
        rows = []
        for reference in sorted(booked, key=lambda key: (case_of[key], key)):
            problems: list[Text] = []
            message = messages.get(reference)
            voucher_amount = int(message.payload.get("voucher", {}).get("amount", 0)) if message else None
            if message is None:
                problems.append(
                    Text(
                        "Bevægelsen har ingen besked til økonomisystemet.",
                        "The movement has no message for the finance system.",
                    )
                )
            elif voucher_amount != booked[reference]:
                problems.append(
                    Text(
                        "Bilagets beløb svarer ikke til bevægelsen i puljen.",
                        "The voucher's amount does not match the movement in the pool.",
                    )
                )
            finance_amount = None
            if message is not None and message.status == "failed":
                problems.append(
                    Text(
                        f"Økonomisystemet afviste bilaget, og udbetalingen eller bogføringen er ikke sket: "
                        f"{message.last_error or '?'}",
                        "The finance system rejected the voucher, so the booking was not made: "
                        f"{message.last_error or '?'}",
                    )
                )
            elif message is not None and message.status != "sent":
                problems.append(
                    Text(
                        "Bilaget venter stadig på at blive bogført i økonomisystemet.",
                        "The voucher is still waiting to be booked in the finance system.",
                    )
                )
            if message is not None and message.status == "sent":
                booking = finance.booking(reference)
                finance_amount = booking.amount if booking is not None else None
                if booking is None or booking.receipt != message.receipt:
                    problems.append(
                        Text(
                            "Økonomisystemet kender ikke bilaget med den kvittering, udbakken har.",
                            "The finance system does not know the voucher with the receipt the outbox has.",
                        )
                    )
                elif booking.amount != booked[reference]:
                    problems.append(
                        Text(
                            "Økonomisystemets beløb svarer ikke til bevægelsen i puljen.",
                            "The finance system's amount does not match the movement in the pool.",
                        )
                    )
            rows.append(
                {
                    "reference": reference,
                    "case": names.get(case_of[reference], str(case_of[reference])),
                    "operation": message.payload.get("operation") if message else None,
                    "ledger_amount": booked[reference],
                    "voucher_amount": voucher_amount,
                    "finance_amount": finance_amount,
                    "status": message.status if message else None,
                    "receipt": message.receipt if message else None,
                    "ok": not problems,
                    "problems": [problem.get(language) for problem in problems],
                }
            )
        return rows
