"""Ledgers of quantities that many cases draw on: a pool's budget and a dumping site's capacity.

An account has a `total` (a pool's budget in øre, a site's approved capacity in m³).
Every entry moves a positive integer amount between two of the buckets available,
reserved, committed and paid, on behalf of one case, so the buckets always add up to the
total and no amount is ever a float. The usual life of an amount:

    reserve   available -> reserved     an application ranked within the pool's budget
    commit    reserved  -> committed    a commitment (tilsagn) or a permit's volume;
              available -> committed    the part not reserved comes from what is available
    pay       committed -> paid         a payout (udbetaling)
    release   reserved  -> available    a refusal, or the rest of a commitment that lapses
              committed -> available

Every function here runs inside the caller's transaction and checks the account's
balances after locking its row (PostgreSQL) or under SQLite's database-wide write lock,
so two commands racing for the last amount cannot both get it. A refused movement raises
`Conflict` before anything is written.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.definitions.templates import format_amount
from engine.errors import Conflict
from engine.i18n import Language, Text
from engine.storage.tables import LedgerAccount, LedgerBucket, LedgerEntry

POOL = "pool"
SITE = "site"
ORE = "ore"
CUBIC_METRES = "m3"

Buckets = dict[str, int]


def format_quantity(unit: str, amount: int, language: Language = "da") -> str:
    """Show an amount of an account: øre as kroner (1.234,50 kr.), m³ as whole cubic metres."""
    if unit == ORE:
        return format_amount(Decimal(amount) / 100, language)
    whole = f"{amount:,}"
    return (whole if language == "en" else whole.replace(",", ".")) + " m³"


@dataclass
class Balances:
    """The amounts in each bucket, of a whole account or of one case's part of it."""

    reserved: int = 0
    committed: int = 0
    paid: int = 0
    available: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "available": self.available,
            "reserved": self.reserved,
            "committed": self.committed,
            "paid": self.paid,
        }


def _add(balances: Balances, bucket: str, amount: int) -> None:
    setattr(balances, bucket, getattr(balances, bucket) + amount)


def find_account(session: Session, kind: str, key: str, *, lock: bool = False) -> LedgerAccount | None:
    """Find an account; with `lock`, hold its row until the transaction ends (PostgreSQL)."""
    query = select(LedgerAccount).where(LedgerAccount.kind == kind, LedgerAccount.key == key)
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def open_account(
    session: Session, kind: str, key: str, unit: str, total: int, now: datetime, *, case_id: int | None = None
) -> LedgerAccount:
    """Return the account `kind`/`key`, locked, creating it with `total` if it does not exist yet.

    Two commands may create the same account at once (two permits for a site without an
    account yet). The insert runs in a savepoint, so the one that loses the race reads and
    locks the row the other created instead of failing.
    """
    existing = find_account(session, kind, key, lock=True)
    if existing is not None:
        return existing
    account = LedgerAccount(kind=kind, key=key, unit=unit, total=total, case_id=case_id, created_at=now)
    try:
        with session.begin_nested():
            session.add(account)
            session.flush()
    except IntegrityError:
        created = find_account(session, kind, key, lock=True)
        if created is None:  # pragma: no cover - the unique constraint names an existing row
            raise
        return created
    return account


def balances(session: Session, account: LedgerAccount) -> Balances:
    """Sum the account's entries per bucket; `available` is what is neither reserved, committed nor paid."""
    result = Balances(available=account.total)
    moved = session.execute(
        select(LedgerEntry.from_bucket, LedgerEntry.to_bucket, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.account_id == account.id)
        .group_by(LedgerEntry.from_bucket, LedgerEntry.to_bucket)
    )
    for source, target, amount in moved:
        _add(result, source, -int(amount))
        _add(result, target, int(amount))
    return result


def case_balances(session: Session, account: LedgerAccount, case_id: int) -> Balances:
    """Sum the part of the account that `case_id` has; a negative `available` is what it drew from the pool."""
    result = Balances()
    moved = session.execute(
        select(LedgerEntry.from_bucket, LedgerEntry.to_bucket, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.account_id == account.id, LedgerEntry.case_id == case_id)
        .group_by(LedgerEntry.from_bucket, LedgerEntry.to_bucket)
    )
    for source, target, amount in moved:
        _add(result, source, -int(amount))
        _add(result, target, int(amount))
    return result


@dataclass
class Movement:
    """The entries that one ledger function wrote, for the case's audit event."""

    entries: list[LedgerEntry] = field(default_factory=list)

    def describe(self, unit: str) -> list[dict[str, Any]]:
        return [
            {
                "operation": entry.operation,
                "amount": entry.amount,
                "unit": unit,
                "from": entry.from_bucket,
                "to": entry.to_bucket,
            }
            for entry in self.entries
        ]


def _entry(
    session: Session,
    account: LedgerAccount,
    case_id: int,
    operation: str,
    amount: int,
    source: str,
    target: str,
    actor: str,
    now: datetime,
    reference: str | None,
) -> LedgerEntry:
    entry = LedgerEntry(
        account_id=account.id,
        case_id=case_id,
        operation=operation,
        amount=amount,
        from_bucket=source,
        to_bucket=target,
        reference=reference,
        at=now,
        actor=actor,
    )
    session.add(entry)
    return entry


def _require_positive(amount: int) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ValueError(f"ledger amounts are positive integers, not {amount!r}")


def _short_of(account: LedgerAccount, what: Text, requested: int, left: int, action: Text) -> Conflict:
    """Build the Conflict for an account with too little left, naming what is left and what was requested."""
    if account.kind == POOL:
        code = "pool_overdrawn"
        da = (
            f"{what.da} har {format_quantity(account.unit, left)} til rådighed; {action.da} på "
            f"{format_quantity(account.unit, requested)} ville overtrække puljen. Intet er ændret."
        )
        en = (
            f"{what.en} has {format_quantity(account.unit, left, 'en')} available; {action.en} of "
            f"{format_quantity(account.unit, requested, 'en')} would overdraw the pool. Nothing was changed."
        )
        hint = Text(
            "Nedsæt beløbet, eller forhøj puljens budget, før du prøver igen.",
            "Lower the amount, or raise the pool's budget, before you try again.",
        )
    else:
        code = "capacity_exceeded"
        da = (
            f"{what.da} har {format_quantity(account.unit, left)} tilbage; {action.da} på "
            f"{format_quantity(account.unit, requested)} ville overskride kapaciteten. Intet er ændret."
        )
        en = (
            f"{what.en} has {format_quantity(account.unit, left, 'en')} left; {action.en} of "
            f"{format_quantity(account.unit, requested, 'en')} would exceed its capacity. Nothing was changed."
        )
        hint = Text(
            "Nedsæt mængden, eller vælg en anden klapplads med plads nok.",
            "Lower the volume, or choose another dumping site with enough room.",
        )
    return Conflict(Text(da, en), code=code, hint=hint, available=left, requested=requested)


def reserve(
    session: Session,
    account: LedgerAccount,
    case_id: int,
    amount: int,
    actor: str,
    now: datetime,
    *,
    what: Text,
    reference: str | None = None,
) -> Movement:
    """Reserve `amount` of what is available for the case, or raise Conflict when too little is left."""
    _require_positive(amount)
    left = balances(session, account).available
    if amount > left:
        raise _short_of(account, what, amount, left, Text("en reservation", "a reservation"))
    return Movement(
        [_entry(session, account, case_id, "reserve", amount, "available", "reserved", actor, now, reference)]
    )


def commit(
    session: Session,
    account: LedgerAccount,
    case_id: int,
    amount: int,
    actor: str,
    now: datetime,
    *,
    what: Text,
    reference: str | None = None,
) -> Movement:
    """Commit `amount` for the case: first its own reservation, then what is available.

    A reservation larger than the commitment is released; a commitment that needs more
    than the reservation plus what is available raises Conflict.
    """
    _require_positive(amount)
    holding = case_balances(session, account, case_id).reserved
    from_reservation = min(holding, amount)
    from_available = amount - from_reservation
    left = balances(session, account).available
    if from_available > left:
        raise _short_of(
            account,
            what,
            amount,
            left + from_reservation,
            Text("tilsagnet", "the commitment") if account.kind == POOL else Text("tilladelsen", "the permit"),
        )
    movement = Movement()
    if from_reservation:
        movement.entries.append(
            _entry(
                session, account, case_id, "commit", from_reservation, "reserved", "committed", actor, now, reference
            )
        )
    if from_available:
        movement.entries.append(
            _entry(session, account, case_id, "commit", from_available, "available", "committed", actor, now, reference)
        )
    if holding > amount:
        movement.entries.append(
            _entry(session, account, case_id, "release", holding - amount, "reserved", "available", actor, now, None)
        )
    return movement


def pay(
    session: Session,
    account: LedgerAccount,
    case_id: int,
    amount: int,
    actor: str,
    now: datetime,
    *,
    what: Text,
    reference: str | None = None,
) -> Movement:
    """Pay `amount` out of the case's commitment, or raise Conflict when it exceeds what is left of it."""
    _require_positive(amount)
    committed = case_balances(session, account, case_id).committed
    if amount > committed:
        raise Conflict(
            Text(
                f"Udbetalingen på {format_quantity(account.unit, amount)} overstiger det, der er tilbage af "
                f"tilsagnet i {what.da}: {format_quantity(account.unit, committed)}. Intet er ændret.",
                f"The payout of {format_quantity(account.unit, amount, 'en')} exceeds what is left of the "
                f"commitment in {what.en}: {format_quantity(account.unit, committed, 'en')}. Nothing was changed.",
            ),
            code="payout_exceeds_commitment",
            hint=Text(
                "Nedsæt det godkendte beløb til højst det tilsagte, der ikke er udbetalt.",
                "Lower the approved amount to at most the committed amount not yet paid.",
            ),
            available=committed,
            requested=amount,
        )
    return Movement([_entry(session, account, case_id, "pay", amount, "committed", "paid", actor, now, reference)])


def release(
    session: Session, account: LedgerAccount, case_id: int, actor: str, now: datetime, *, reference: str | None = None
) -> Movement:
    """Give back what the case still holds reserved or committed; nothing to release writes nothing."""
    holding = case_balances(session, account, case_id)
    movement = Movement()
    for bucket in (LedgerBucket.RESERVED, LedgerBucket.COMMITTED):
        amount = getattr(holding, bucket)
        if amount > 0:
            movement.entries.append(
                _entry(session, account, case_id, "release", amount, bucket, "available", actor, now, reference)
            )
    return movement


def set_total(session: Session, account: LedgerAccount, total: int, *, what: Text) -> None:
    """Change an account's total, which may not fall below what is reserved, committed and paid."""
    if total < 0:
        raise ValueError("an account's total cannot be negative")
    current = balances(session, account)
    used = current.reserved + current.committed + current.paid
    if total < used:
        raise Conflict(
            Text(
                f"{what.da} har allerede brugt {format_quantity(account.unit, used)}; "
                f"det kan ikke sættes ned til {format_quantity(account.unit, total)}. Intet er ændret.",
                f"{what.en} has already used {format_quantity(account.unit, used, 'en')}; "
                f"it cannot be lowered to {format_quantity(account.unit, total, 'en')}. Nothing was changed.",
            ),
            code="total_below_use",
        )
    account.total = total


def entries_by_case(session: Session, account: LedgerAccount) -> dict[int, list[LedgerEntry]]:
    """Group the account's entries by case, oldest first."""
    grouped: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in session.scalars(
        select(LedgerEntry).where(LedgerEntry.account_id == account.id).order_by(LedgerEntry.id)
    ):
        grouped[entry.case_id].append(entry)
    return grouped
