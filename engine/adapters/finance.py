"""Finance system adapter (Navision Stat), with a fake for development and tests.

Danish state institutions keep their accounts in Navision Stat. A grant case books four
kinds of transaction there, each from a voucher (bilag):

    reserve   a budget reservation (disposition) on a finance account
    commit    a legal commitment (forpligtelse), such as a grant commitment (tilsagn)
    pay       a payment to the creditor's NemKonto
    release   cancels what remains of a reservation or a commitment

A voucher names the finance account, a Finance Act account such as 23.22.01.10. It has
the amount in øre (a positive int, never a float), a dimension (the grant scheme or
pool), the voucher text and the case's journal number, and a payment has the creditor.
A public payout names only the creditor's CPR, CVR or SE number. NemKonto, the register
of the account each citizen and company has chosen for public payments, supplies the
bank account, so the payer never sees it.

Every call carries an idempotency key. Booking the same key again books nothing and
returns the first receipt (the finance system's transaction number), so the outbox may
retry a call whose answer it lost.

The errors, by what the outbox does with them:

    FinanceError              not booked now; the outbox retries later
    ├── FinanceUnavailable    the finance system timed out or failed
    ├── InsufficientBalance   the case has too little reserved or committed for the voucher
    └── FinanceRejected       rejected for good; sending the same voucher again cannot succeed
        ├── InvalidVoucher    a field of the voucher is invalid
        ├── KeyReused         the idempotency key was booked with another voucher
        └── NoNemKonto        the creditor has no NemKonto

`FakeNavisionStat` keeps each case's balances per account and dimension, as the pool
ledger does: a commitment replaces the case's reservation (what the reservation holds
beyond the commitment is released), a payment draws on the commitment, and a release
cancels the reservation first, then the commitment. Its NemKonto register is
`data/nemkonto_fake.csv`, described in `data/README.md`.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast, get_args

from stdnum.dk import cpr as stdnum_cpr
from stdnum.dk import cvr as stdnum_cvr
from stdnum.exceptions import ValidationError

from engine.i18n import Text

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger(__name__)

Operation = Literal["reserve", "commit", "pay", "release"]
OPERATIONS: tuple[Operation, ...] = get_args(Operation)
CreditorIdType = Literal["CVR", "CPR", "SE"]
CREDITOR_ID_TYPES: tuple[CreditorIdType, ...] = get_args(CreditorIdType)

# Paragraph, main and activity area, main account and sub-account of the Finance Act.
ACCOUNT_PATTERN = re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.[0-9]{2}")
# The fake's limit, modelled on the 50-character voucher text of Navision's journal lines.
TEXT_MAX_LENGTH = 50
# A dimension value is a Code[20] field in Dynamics NAV and Business Central.
DIMENSION_MAX_LENGTH = 20
JOURNAL_NUMBER_MAX_LENGTH = 32
CREDITOR_NAME_MAX_LENGTH = 200
VOUCHER_KEYS = ("account", "amount", "dimension", "text", "journal_number", "creditor")
CREDITOR_KEYS = ("id_type", "number", "name")

NEMKONTO_FILE = "nemkonto_fake.csv"
NEMKONTO_COLUMNS = ("id_type", "number", "nemkonto", "note")


def _utc_now() -> datetime:
    return datetime.now(UTC)


# Errors ---------------------------------------------------------------------------------------


class FinanceError(Exception):
    """The finance system did not book the voucher now; the outbox keeps the message and retries later."""


class FinanceUnavailable(FinanceError):
    """The finance system timed out or failed while booking."""


class InsufficientBalance(FinanceError):
    """The case has too little reserved or committed for the voucher.

    The outbox retries it, because the earlier voucher that books the missing amount may
    still be waiting in the outbox behind a failed attempt.
    """


class FinanceRejected(FinanceError):
    """The finance system rejected the voucher for good; sending it again unchanged cannot succeed."""


class InvalidVoucher(FinanceRejected):
    """One or more fields of a voucher are invalid; `problems` lists each of them in both languages."""

    def __init__(self, problems: list[Text]) -> None:
        self.problems = problems
        self.text = Text(
            "Bilaget er ugyldigt: " + " ".join(problem.da for problem in problems),
            "The voucher is invalid: " + " ".join(problem.en for problem in problems),
        )
        super().__init__(self.text.en)


class KeyReused(FinanceRejected):
    """The idempotency key was booked before with another operation or voucher."""


class NoNemKonto(FinanceRejected):
    """The creditor has no NemKonto, so the payment cannot be made."""


# Vouchers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Creditor:
    """The receiver of a payment, named by CPR, CVR or SE number; NemKonto supplies the bank account."""

    id_type: CreditorIdType
    number: str
    name: str

    def __post_init__(self) -> None:
        problems = _creditor_problems(self)
        if problems:
            raise InvalidVoucher(problems)

    @property
    def digits(self) -> str:
        """Return the number without separators, so that "010190-1234" and "0101901234" match."""
        return re.sub(r"\D", "", self.number)

    def describe(self) -> str:
        """Name the creditor for error messages and logs: a CPR number is personal data and is left out."""
        return "the creditor's CPR number" if self.id_type == "CPR" else f"{self.id_type} {self.number}"

    def as_dict(self) -> dict[str, str]:
        return {"id_type": self.id_type, "number": self.number, "name": self.name}

    @classmethod
    def from_dict(cls, data: Any) -> Creditor:
        if not isinstance(data, Mapping):
            raise InvalidVoucher([Text("Kreditor skal være et objekt.", "The creditor must be an object.")])
        if "number" not in data and "id" in data:
            # Parties and letter recipients name the number `id`; a creditor built from one may too.
            data = {("number" if key == "id" else key): value for key, value in data.items()}
        problems = _key_problems(data, CREDITOR_KEYS, CREDITOR_KEYS, "kreditor", "creditor")
        if problems:
            raise InvalidVoucher(problems)
        return cls(id_type=data["id_type"], number=data["number"], name=data["name"])


def _creditor_problems(creditor: Creditor) -> list[Text]:
    problems: list[Text] = []
    if creditor.id_type not in CREDITOR_ID_TYPES:
        problems.append(
            Text(
                f"Kreditorens id-type '{creditor.id_type}' er ukendt; brug CVR, CPR eller SE.",
                f"The creditor's id type '{creditor.id_type}' is unknown; use CVR, CPR or SE.",
            )
        )
    elif not isinstance(creditor.number, str):
        problems.append(Text("Kreditorens nummer skal være en tekst.", "The creditor's number must be a string."))
    elif creditor.id_type == "CPR" and re.fullmatch(r"[0-9]{6}-?[0-9]{4}", creditor.number) is None:
        # The number itself stays out of the message, because a CPR number is personal data.
        problems.append(
            Text(
                "Kreditorens CPR-nummer skal have formen DDMMÅÅ-XXXX.",
                "The creditor's CPR number must have the form DDMMYY-XXXX.",
            )
        )
    elif creditor.id_type != "CPR" and re.fullmatch(r"[1-9][0-9]{7}", creditor.number) is None:
        problems.append(
            Text(
                f"Kreditorens {creditor.id_type}-nummer '{creditor.number}' skal være 8 cifre og ikke starte med 0.",
                f"The creditor's {creditor.id_type} number '{creditor.number}' must be 8 digits, not starting with 0.",
            )
        )
    if not isinstance(creditor.name, str) or not creditor.name.strip():
        problems.append(Text("Kreditorens navn mangler.", "The creditor's name is missing."))
    elif len(creditor.name) > CREDITOR_NAME_MAX_LENGTH:
        problems.append(
            Text(
                f"Kreditorens navn er længere end {CREDITOR_NAME_MAX_LENGTH} tegn.",
                f"The creditor's name is longer than {CREDITOR_NAME_MAX_LENGTH} characters.",
            )
        )
    return problems


@dataclass(frozen=True)
class Voucher:
    """A voucher (bilag) to book: the amount is in øre, and `creditor` is required for a payment only.

    >>> Voucher("23.22.01.10", 1_250_000, "N2000-2026", "Tilsagn 2026-000001", "2026-000001").amount
    1250000
    """

    account: str
    amount: int
    dimension: str
    text: str
    journal_number: str
    creditor: Creditor | None = None

    def __post_init__(self) -> None:
        problems = _voucher_problems(self)
        if problems:
            raise InvalidVoucher(problems)

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "amount": self.amount,
            "dimension": self.dimension,
            "text": self.text,
            "journal_number": self.journal_number,
            "creditor": self.creditor.as_dict() if self.creditor is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Voucher:
        """Build a voucher from its JSON form (`as_dict`); raise InvalidVoucher naming every invalid field."""
        if not isinstance(data, Mapping):
            raise InvalidVoucher([Text("Bilaget skal være et objekt.", "The voucher must be an object.")])
        required = tuple(key for key in VOUCHER_KEYS if key != "creditor")
        problems = _key_problems(data, VOUCHER_KEYS, required, "bilaget", "the voucher")
        if problems:
            raise InvalidVoucher(problems)
        # The creditor's problems are reported together with the other fields' problems.
        creditor: Creditor | None = None
        creditor_problems: list[Text] = []
        if data.get("creditor") is not None:
            try:
                creditor = Creditor.from_dict(data["creditor"])
            except InvalidVoucher as invalid:
                creditor_problems = invalid.problems
        try:
            voucher = cls(
                account=data["account"],
                amount=data["amount"],
                dimension=data["dimension"],
                text=data["text"],
                journal_number=data["journal_number"],
                creditor=creditor,
            )
        except InvalidVoucher as invalid:
            raise InvalidVoucher(invalid.problems + creditor_problems) from None
        if creditor_problems:
            raise InvalidVoucher(creditor_problems)
        return voucher

    def check_for(self, operation: str) -> None:
        """Raise InvalidVoucher unless this voucher can be booked as `operation`."""
        if operation not in OPERATIONS:
            raise InvalidVoucher(
                [
                    Text(
                        f"Handlingen '{operation}' er ukendt; brug {', '.join(OPERATIONS)}.",
                        f"The operation '{operation}' is unknown; use {', '.join(OPERATIONS)}.",
                    )
                ]
            )
        if operation == "pay" and self.creditor is None:
            raise InvalidVoucher(
                [
                    Text(
                        "En udbetaling skal have en kreditor med CPR-, CVR- eller SE-nummer.",
                        "A payment needs a creditor with a CPR, CVR or SE number.",
                    )
                ]
            )


def _key_problems(
    data: Mapping[str, Any], allowed: tuple[str, ...], required: tuple[str, ...], name_da: str, name_en: str
) -> list[Text]:
    problems: list[Text] = []
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        problems.append(
            Text(
                f"Ukendte felter i {name_da}: {', '.join(unknown)}; tilladt er {', '.join(allowed)}.",
                f"Unknown fields in {name_en}: {', '.join(unknown)}; allowed are {', '.join(allowed)}.",
            )
        )
    missing = [key for key in required if key not in data]
    if missing:
        problems.append(
            Text(
                f"Felter mangler i {name_da}: {', '.join(missing)}.",
                f"Fields are missing in {name_en}: {', '.join(missing)}.",
            )
        )
    return problems


def _voucher_problems(voucher: Voucher) -> list[Text]:
    """Check every field of a voucher and return one text per invalid field."""
    problems: list[Text] = []
    if not isinstance(voucher.account, str) or ACCOUNT_PATTERN.fullmatch(voucher.account) is None:
        problems.append(
            Text(
                f"Kontoen {voucher.account!r} er ikke en finanslovskonto på formen 23.22.01.10.",
                f"The account {voucher.account!r} is not a Finance Act account of the form 23.22.01.10.",
            )
        )
    # bool is a subclass of int, and a float may have lost øre already, so both are refused.
    if isinstance(voucher.amount, bool) or not isinstance(voucher.amount, int) or voucher.amount <= 0:
        problems.append(
            Text(
                f"Beløbet skal være et helt antal øre over 0, ikke {voucher.amount!r}.",
                f"The amount must be a whole number of øre above 0, not {voucher.amount!r}.",
            )
        )
    if not isinstance(voucher.dimension, str) or not voucher.dimension.strip():
        problems.append(
            Text("Dimensionen (ordning eller pulje) mangler.", "The dimension (scheme or pool) is missing.")
        )
    elif len(voucher.dimension) > DIMENSION_MAX_LENGTH:
        problems.append(
            Text(
                f"Dimensionen '{voucher.dimension}' er længere end {DIMENSION_MAX_LENGTH} tegn.",
                f"The dimension '{voucher.dimension}' is longer than {DIMENSION_MAX_LENGTH} characters.",
            )
        )
    if not isinstance(voucher.text, str) or not voucher.text.strip():
        problems.append(Text("Bilagsteksten mangler.", "The voucher text is missing."))
    elif len(voucher.text) > TEXT_MAX_LENGTH or "\n" in voucher.text or "\r" in voucher.text:
        problems.append(
            Text(
                f"Bilagsteksten '{voucher.text}' skal være én linje på højst {TEXT_MAX_LENGTH} tegn; "
                f"den har {len(voucher.text)}.",
                f"The voucher text '{voucher.text}' must be one line of at most {TEXT_MAX_LENGTH} characters; "
                f"it has {len(voucher.text)}.",
            )
        )
    if (
        not isinstance(voucher.journal_number, str)
        or not voucher.journal_number
        or len(voucher.journal_number) > JOURNAL_NUMBER_MAX_LENGTH
        or any(character.isspace() for character in voucher.journal_number)
    ):
        problems.append(
            Text(
                f"Journalnummeret {voucher.journal_number!r} er ugyldigt; det skal være sagens journalnummer.",
                f"The journal number {voucher.journal_number!r} is invalid; it must be the case's journal number.",
            )
        )
    if voucher.creditor is not None and not isinstance(voucher.creditor, Creditor):
        problems.append(Text("Kreditor skal være et objekt.", "The creditor must be an object."))
    return problems


# Transactions and balances --------------------------------------------------------------------


@dataclass(frozen=True)
class Transaction:
    """A booked transaction: `receipt` is its transaction number, which the booking call returned."""

    receipt: str
    key: str
    operation: Operation
    voucher: Voucher
    booked_at: datetime

    @property
    def amount(self) -> int:
        """Return the voucher's amount in øre."""
        return self.voucher.amount

    def as_dict(self) -> dict[str, Any]:
        return {
            "receipt": self.receipt,
            "key": self.key,
            "operation": self.operation,
            "voucher": self.voucher.as_dict(),
            "booked_at": self.booked_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transaction:
        operation = data["operation"]
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        return cls(
            receipt=str(data["receipt"]),
            key=str(data["key"]),
            operation=cast(Operation, operation),
            voucher=Voucher.from_dict(data["voucher"]),
            booked_at=datetime.fromisoformat(data["booked_at"]),
        )


@dataclass
class Balance:
    """Amounts in øre that a case has open and has booked on one account and dimension."""

    reserved: int = 0
    committed: int = 0
    paid: int = 0
    released: int = 0

    def apply(self, operation: Operation, amount: int) -> None:
        """Move `amount` as `operation` does; a commitment replaces the reservation, and a release draws on it first."""
        if operation == "reserve":
            self.reserved += amount
        elif operation == "commit":
            self.released += max(self.reserved - amount, 0)
            self.reserved = 0
            self.committed += amount
        elif operation == "pay":
            self.committed -= amount
            self.paid += amount
        else:
            from_reservation = min(amount, self.reserved)
            self.reserved -= from_reservation
            self.committed -= amount - from_reservation
            self.released += amount


BalanceKey = tuple[str, str, str]


def case_balances(transactions: list[Transaction]) -> dict[BalanceKey, Balance]:
    """Sum transactions by (journal number, account, dimension), in booking order."""
    balances: dict[BalanceKey, Balance] = {}
    for transaction in transactions:
        voucher = transaction.voucher
        key = (voucher.journal_number, voucher.account, voucher.dimension)
        balances.setdefault(key, Balance()).apply(transaction.operation, voucher.amount)
    return balances


# The interface --------------------------------------------------------------------------------


class FinanceSystem(Protocol):
    """The finance system: each booking returns its transaction number, and a repeated key books once."""

    def reserve(self, voucher: Voucher, key: str) -> str:
        """Book a budget reservation (disposition) on the voucher's account."""
        ...

    def commit(self, voucher: Voucher, key: str) -> str:
        """Book a legal commitment (forpligtelse), which replaces the case's reservation on the account."""
        ...

    def pay(self, voucher: Voucher, key: str) -> str:
        """Pay the amount to the creditor's NemKonto, drawing on the case's commitment."""
        ...

    def release(self, voucher: Voucher, key: str) -> str:
        """Cancel the amount from what remains of the case's reservation, then of its commitment."""
        ...

    def transactions(self, journal_number: str | None = None) -> list[Transaction]:
        """List the booked transactions, oldest first, optionally of one case only."""
        ...

    def booking(self, key: str) -> Transaction | None:
        """Return the transaction booked under an idempotency key, or None when none was."""
        ...


def book(system: FinanceSystem, operation: str, voucher: Voucher, key: str) -> str:
    """Book `voucher` as `operation` and return the receipt; raise InvalidVoucher when it cannot be that operation."""
    voucher.check_for(operation)
    calls: dict[str, Callable[[Voucher, str], str]] = {
        "reserve": system.reserve,
        "commit": system.commit,
        "pay": system.pay,
        "release": system.release,
    }
    return calls[operation](voucher, key)


# The fake NemKonto register -------------------------------------------------------------------


@dataclass(frozen=True)
class NemKontoRegister:
    """A fake NemKonto register: the numbers listed in a CSV file, and a rule for every other number.

    A listed number has an account when its `nemkonto` column is `yes`. Any other number
    has one when it is well formed: a CVR number that passes the modulus-11 check, an SE
    number of 8 digits, or a CPR number whose first six digits are a valid date.
    """

    listed: Mapping[tuple[str, str], bool] = field(default_factory=dict)

    def has_account(self, creditor: Creditor) -> bool:
        listed = self.listed.get((creditor.id_type, creditor.digits))
        if listed is not None:
            return listed
        if creditor.id_type == "CVR":
            return bool(stdnum_cvr.is_valid(creditor.digits))
        if creditor.id_type == "SE":
            return re.fullmatch(r"[1-9][0-9]{7}", creditor.digits) is not None
        try:
            stdnum_cpr.get_birth_date(creditor.digits)
        except (ValidationError, ValueError):
            return False
        return True

    @classmethod
    def from_csv(cls, text: str, source: str) -> NemKontoRegister:
        """Parse the register's CSV; raise ValueError naming `source` and the line of the first invalid row."""
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None or tuple(column.strip() for column in header) != NEMKONTO_COLUMNS:
            raise ValueError(f"{source}, line 1: invalid header {header!r}. Expected {','.join(NEMKONTO_COLUMNS)}")
        listed: dict[tuple[str, str], bool] = {}
        for row in reader:
            if not row:
                continue
            location = f"{source}, line {reader.line_num}"
            if len(row) != len(NEMKONTO_COLUMNS):
                raise ValueError(f"{location}: expected {len(NEMKONTO_COLUMNS)} fields, got {len(row)}")
            id_type, number, nemkonto, _note = (value.strip() for value in row)
            if id_type not in CREDITOR_ID_TYPES:
                raise ValueError(f"{location}: invalid id_type {id_type!r}. Expected CVR, CPR or SE")
            if nemkonto not in ("yes", "no"):
                raise ValueError(f"{location}: invalid nemkonto {nemkonto!r}. Expected yes or no")
            digits = re.sub(r"\D", "", number)
            if (id_type, digits) in listed:
                raise ValueError(f"{location}: {id_type} {number} is listed twice")
            listed[(id_type, digits)] = nemkonto == "yes"
        return cls(listed)


@functools.cache
def shipped_nemkonto_register() -> NemKontoRegister:
    """Return the register of `data/nemkonto_fake.csv`, read once per process."""
    text = (resources.files("engine.adapters") / "data" / NEMKONTO_FILE).read_text(encoding="utf-8")
    return NemKontoRegister.from_csv(text, NEMKONTO_FILE)


# The fake Navision Stat -----------------------------------------------------------------------


class FakeNavisionStat:
    """A fake Navision Stat that keeps its transactions in memory and, with `path`, in a JSON-lines file.

    With a file, every call locks the file, reads the lines other processes have appended
    since, books, and appends its own line before it unlocks. So an API process and
    workers sharing `var/finance/` number their transactions in one series and book each
    idempotency key once.

    For tests: `failures_left` makes the next calls raise FinanceUnavailable before they
    book anything, and `requests` counts the calls per idempotency key.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        nemkonto: NemKontoRegister | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = path
        self.nemkonto = nemkonto if nemkonto is not None else shipped_nemkonto_register()
        self.clock = clock
        self.failures_left = 0
        self.requests: Counter[str] = Counter()
        self._transactions: list[Transaction] = []
        self._by_key: dict[str, Transaction] = {}
        self._balances: dict[BalanceKey, Balance] = {}
        self._read_up_to = 0
        self._lines_read = 0
        self._lock = threading.Lock()
        with self._synchronised():
            pass

    # FinanceSystem ------------------------------------------------------------------------------

    def reserve(self, voucher: Voucher, key: str) -> str:
        return self._book("reserve", voucher, key)

    def commit(self, voucher: Voucher, key: str) -> str:
        return self._book("commit", voucher, key)

    def pay(self, voucher: Voucher, key: str) -> str:
        return self._book("pay", voucher, key)

    def release(self, voucher: Voucher, key: str) -> str:
        return self._book("release", voucher, key)

    def transactions(self, journal_number: str | None = None) -> list[Transaction]:
        with self._synchronised():
            return [
                transaction
                for transaction in self._transactions
                if journal_number is None or transaction.voucher.journal_number == journal_number
            ]

    def booking(self, key: str) -> Transaction | None:
        with self._synchronised():
            return self._by_key.get(key)

    # Reconciliation helpers ---------------------------------------------------------------------

    def balance(self, journal_number: str, account: str, dimension: str) -> Balance:
        """Return a copy of what the case has open and booked on one account and dimension."""
        with self._synchronised():
            found = self._balances.get((journal_number, account, dimension), Balance())
            return Balance(found.reserved, found.committed, found.paid, found.released)

    # Booking ------------------------------------------------------------------------------------

    def _book(self, operation: Operation, voucher: Voucher, key: str) -> str:
        voucher.check_for(operation)
        with self._synchronised(writing=True) as append:
            self.requests[key] += 1
            if self.failures_left > 0:
                self.failures_left -= 1
                raise FinanceUnavailable("simulated outage of Navision Stat")
            existing = self._by_key.get(key)
            if existing is not None:
                if existing.operation != operation or existing.voucher != voucher:
                    raise KeyReused(
                        f"the idempotency key {key} was booked as {existing.operation} {existing.receipt} "
                        "with another voucher; give each voucher a key of its own"
                    )
                return existing.receipt
            self._check_balance(operation, voucher)
            if operation == "pay" and voucher.creditor is not None and not self.nemkonto.has_account(voucher.creditor):
                raise NoNemKonto(
                    f"NemKonto has no account for {voucher.creditor.describe()}, so the payment of "
                    f"{voucher.amount} øre was not made. Ask the creditor to register a NemKonto with "
                    "their bank, then queue the message again"
                )
            transaction = Transaction(
                receipt=f"NS-{len(self._transactions) + 1:08d}",
                key=key,
                operation=operation,
                voucher=voucher,
                booked_at=self.clock(),
            )
            append(transaction)
            logger.info(
                "Navision Stat booked %s %s of %d øre on %s for case %s",
                operation,
                transaction.receipt,
                voucher.amount,
                voucher.account,
                voucher.journal_number,
            )
            return transaction.receipt

    def _check_balance(self, operation: Operation, voucher: Voucher) -> None:
        balance = self._balances.get((voucher.journal_number, voucher.account, voucher.dimension), Balance())
        if operation == "pay" and voucher.amount > balance.committed:
            open_amount, buckets = balance.committed, "committed"
        elif operation == "release" and voucher.amount > balance.reserved + balance.committed:
            open_amount, buckets = balance.reserved + balance.committed, "reserved or committed"
        else:
            return
        raise InsufficientBalance(
            f"case {voucher.journal_number} has {open_amount} øre {buckets} on {voucher.account} "
            f"({voucher.dimension}), less than the {voucher.amount} øre to {operation}"
        )

    def _remember(self, transaction: Transaction) -> None:
        self._transactions.append(transaction)
        self._by_key[transaction.key] = transaction
        voucher = transaction.voucher
        balance_key = (voucher.journal_number, voucher.account, voucher.dimension)
        self._balances.setdefault(balance_key, Balance()).apply(transaction.operation, voucher.amount)

    # The file -----------------------------------------------------------------------------------

    @contextmanager
    def _synchronised(self, *, writing: bool = False) -> Iterator[Callable[[Transaction], None]]:
        """Hold the thread lock and, with a file, the file's lock, after reading what others appended.

        Yields the function that books a transaction: in memory and, with a file, as a line
        of it. Only `writing` creates the file and its folder, so reading creates nothing.
        """
        with self._lock:
            if self.path is None or not (writing or self.path.exists()):
                yield self._remember
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as handle:
                _lock_file(handle)
                try:
                    self._read_new_lines(handle)
                    yield functools.partial(self._append, handle)
                finally:
                    _unlock_file(handle)

    def _append(self, handle: IO[bytes], transaction: Transaction) -> None:
        line = json.dumps(transaction.as_dict(), ensure_ascii=False).encode("utf-8") + b"\n"
        handle.write(line)
        handle.flush()
        # The receipt is returned only once the line is on disk, so a crash cannot lose a booking.
        os.fsync(handle.fileno())
        self._read_up_to += len(line)
        self._lines_read += 1
        self._remember(transaction)

    def _read_new_lines(self, handle: IO[bytes]) -> None:
        handle.seek(self._read_up_to)
        data = handle.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            # A process died while it appended; its booking never returned a receipt.
            logger.warning(
                "Dropping an incomplete last line of %d bytes from %s, left by a crashed writer",
                len(data) - complete,
                self.path,
            )
            handle.truncate(self._read_up_to + complete)
        for line in data[:complete].splitlines():
            self._lines_read += 1
            try:
                self._remember(Transaction.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError, FinanceRejected) as error:
                raise ValueError(f"{self.path}, line {self._lines_read}: invalid transaction: {error}") from None
        self._read_up_to += complete


def _lock_file(handle: IO[bytes]) -> None:
    # NOTE: Windows has no fcntl; there the fake is safe for the threads of one process only.
    if sys.platform != "win32":
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _unlock_file(handle: IO[bytes]) -> None:
    if sys.platform != "win32":
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
