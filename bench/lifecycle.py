"""Lifecycle benchmark: CITES import cases from submission to closing, against a plain-SQL baseline.

Run as ``python -m bench.lifecycle``, and see ``--help`` for the options. For each backend the
script migrates a fresh database, deploys the repository's definitions and drives N cases
through the `Sagsflow` service with the fake adapters, one service call (one transaction)
per action. Meanwhile it records every statement the engine sends, grouped by
transaction. The baseline replays the recorded INSERT, UPDATE and DELETE statements with
the plain DB-API driver (sqlite3 or psycopg) into a second fresh database, one
transaction per engine transaction that wrote. Reads are not replayed, so the baseline is
the cost of the writes alone. docs/benchmarks.md explains the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import ExecuteStyle
from sqlalchemy.exc import OperationalError

from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MemoryDigitalPost
from engine.adapters.species import OfflineSpeciesPlus
from engine.auth import Actor
from engine.definitions.loader import LoadedDefinitions, load_definitions
from engine.runtime.services import Services
from engine.service import Sagsflow
from engine.storage.database import Database, normalise_url
from engine.storage.migrate import upgrade
from engine.storage.tables import (
    Base,
    Case,
    CaseStatus,
    CaseStep,
    Document,
    DocumentKind,
    DocumentStatus,
    OutboxMessage,
    OutboxStatus,
    StepStatus,
)

REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPOSITORY / "examples" / "cites"
PROCESS_ID = "cites-import"
BACKENDS = ("sqlite", "postgresql")
DEFAULT_CASES = 200
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

APPLICANT = Actor("bench-applicant", frozenset({"applicant"}))
CASEWORKER = Actor("bench-caseworker", frozenset({"caseworker"}), ("cites",))
APPROVER = Actor("bench-approver", frozenset({"approver"}), ("cites",))

# Transactions recorded under this label (the deploy) are replayed before the timer starts.
SETUP = "setup"

WRITE_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE"})
READ_KEYWORDS = frozenset({"SELECT", "SHOW"})
CONTROL_KEYWORDS = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"})

BASELINE_NOTE = (
    "Baseline: the engine's recorded INSERT/UPDATE/DELETE statements replayed with the plain "
    "DB-API driver, one transaction per engine transaction. Reads are not replayed, so the "
    "baseline is the cost of the writes alone."
)


class BenchmarkError(Exception):
    """The benchmark could not run, or the engine or the replay did not do what was expected."""


# Recording the engine's statements ---------------------------------------------------------


@dataclass
class RecordedStatement:
    sql: str
    parameters: Any  # as the driver received them: a tuple (sqlite3) or a dict (psycopg)
    executemany: bool


@dataclass
class RecordedTransaction:
    command: str
    writes: list[RecordedStatement] = field(default_factory=list)


@dataclass
class CommandStats:
    """Totals for one kind of service call, summed over its calls.

    `control` counts BEGIN and the like as far as they pass through the cursor: SQLite's
    BEGIN IMMEDIATE does, but COMMIT (the driver's commit()) and psycopg's implicit BEGIN
    do not. `checkouts` counts connection pool checkouts. The engine's PostgreSQL pool
    pings the server on each checkout, a round trip that no statement count includes.
    """

    calls: int = 0
    seconds: float = 0.0
    transactions: int = 0
    reads: int = 0
    writes: int = 0
    control: int = 0
    checkouts: int = 0


def statement_keyword(sql: str) -> str:
    words = sql.lstrip().split(maxsplit=1)
    return words[0].upper() if words else ""


class StatementRecorder:
    """Record every statement an engine executes, keeping writes grouped by transaction.

    Statements are attributed to the label of the service call running at the time
    (`command`). The benchmark is single-threaded, so one open transaction at a time is
    tracked. Statements of another kind than read, write or transaction control are
    collected in `unclassified`, as are writes outside a transaction, and `check` rejects
    them, so that no write can slip past the baseline unnoticed.
    """

    def __init__(self, engine: Engine) -> None:
        self.transactions: list[RecordedTransaction] = []
        self.stats: dict[str, CommandStats] = {}
        self.unclassified: list[str] = []
        self.rolled_back: list[str] = []
        self._label = SETUP
        self._open: RecordedTransaction | None = None
        self._listeners: list[tuple[Any, str, Callable[..., None]]] = [
            (engine, "before_cursor_execute", self._on_execute),
            (engine, "begin", self._on_begin),
            (engine, "commit", self._on_commit),
            (engine, "rollback", self._on_rollback),
            (engine.pool, "checkout", self._on_checkout),
        ]
        for target, name, listener in self._listeners:
            event.listen(target, name, listener)

    def detach(self) -> None:
        for target, name, listener in self._listeners:
            event.remove(target, name, listener)

    @contextmanager
    def command(self, label: str) -> Iterator[None]:
        """Attribute what runs inside the block to `label` and time it."""
        previous, self._label = self._label, label
        stats = self._stats()
        start = time.perf_counter()
        try:
            yield
        finally:
            stats.seconds += time.perf_counter() - start
            stats.calls += 1
            self._label = previous

    def check(self) -> None:
        if self.unclassified:
            raise BenchmarkError(
                f"The engine sent {len(self.unclassified)} statements that are not reads, writes or transaction "
                "control, or writes outside a transaction, so the baseline cannot replay the run faithfully. "
                f"First: {self.unclassified[0][:200]!r}"
            )
        if self.rolled_back:
            raise BenchmarkError(
                f"{len(self.rolled_back)} engine transactions with writes were rolled back (the first in "
                f"'{self.rolled_back[0]}'), so a replay would not reproduce the committed rows."
            )

    def _stats(self) -> CommandStats:
        return self.stats.setdefault(self._label, CommandStats())

    def _on_execute(
        self, _connection: Any, _cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        keyword = statement_keyword(statement)
        stats = self._stats()
        if keyword in WRITE_KEYWORDS:
            stats.writes += 1
            if self._open is None:
                self.unclassified.append(statement)
                return
            # SQLAlchemy passes executemany=True for each "insertmanyvalues" batch, but sends the
            # batch (one INSERT with many VALUES rows) with cursor.execute().
            batch = context is not None and context.execute_style is ExecuteStyle.INSERTMANYVALUES
            self._open.writes.append(RecordedStatement(statement, parameters, executemany and not batch))
        elif keyword in READ_KEYWORDS:
            stats.reads += 1
        elif keyword in CONTROL_KEYWORDS:
            stats.control += 1
        else:
            self.unclassified.append(statement)

    def _on_begin(self, _connection: Any) -> None:
        self._stats().transactions += 1
        self._open = RecordedTransaction(self._label)

    def _on_commit(self, _connection: Any) -> None:
        if self._open is not None and self._open.writes:
            self.transactions.append(self._open)
        self._open = None

    def _on_rollback(self, _connection: Any) -> None:
        if self._open is not None and self._open.writes:
            self.rolled_back.append(self._open.command)
        self._open = None

    def _on_checkout(self, _dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        self._stats().checkouts += 1


# Replaying the writes with plain DB-API -----------------------------------------------------


class DbapiCursor(Protocol):
    @property
    def description(self) -> Any: ...

    def execute(self, sql: Any, parameters: Any, /) -> Any: ...

    def executemany(self, sql: Any, parameters: Any, /) -> Any: ...

    def fetchall(self) -> Any: ...


def replay_statements(cursor: DbapiCursor, statements: Sequence[RecordedStatement]) -> None:
    for statement in statements:
        if statement.executemany:
            cursor.executemany(statement.sql, statement.parameters)
        else:
            cursor.execute(statement.sql, statement.parameters)
        if cursor.description is not None:
            cursor.fetchall()  # the engine fetches RETURNING rows too


def split_setup(
    transactions: Sequence[RecordedTransaction],
) -> tuple[list[RecordedTransaction], list[RecordedTransaction]]:
    setup = [transaction for transaction in transactions if transaction.command == SETUP]
    measured = [transaction for transaction in transactions if transaction.command != SETUP]
    return setup, measured


# Databases under test -----------------------------------------------------------------------


class Target(Protocol):
    """A fresh, empty database that the benchmark may fill and measure."""

    @property
    def url(self) -> str: ...

    def stored_bytes(self) -> int: ...

    def replay(self, transactions: Sequence[RecordedTransaction], database: Database) -> float:
        """Replay the setup transactions untimed, then the others timed, and return their seconds.

        `database` is the engine's `Database` on this target. SQLite copies its connection settings.
        """
        ...


@dataclass
class SqliteTarget:
    path: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def stored_bytes(self) -> int:
        """Return the size of the database file plus its WAL after a full checkpoint."""
        with closing(sqlite3.connect(self.path)) as connection:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise BenchmarkError(f"The WAL checkpoint of {self.path} was blocked by another connection.")
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def replay(self, transactions: Sequence[RecordedTransaction], database: Database) -> float:
        pragmas = engine_pragmas(database)
        setup, measured = split_setup(transactions)
        # Autocommit mode, so that BEGIN IMMEDIATE below is the transaction the engine also starts.
        with closing(sqlite3.connect(self.path, isolation_level=None)) as connection:
            for name, value in pragmas.items():
                connection.execute(f"PRAGMA {name} = {value}")
            cursor = connection.cursor()
            for transaction in setup:
                self._replay_one(cursor, transaction)
            start = time.perf_counter()
            for transaction in measured:
                self._replay_one(cursor, transaction)
            return time.perf_counter() - start

    @staticmethod
    def _replay_one(cursor: sqlite3.Cursor, transaction: RecordedTransaction) -> None:
        cursor.execute("BEGIN IMMEDIATE")
        replay_statements(cursor, transaction.writes)
        cursor.execute("COMMIT")


def engine_pragmas(database: Database) -> dict[str, str]:
    """Return the connection settings the engine's SQLite connections run with."""
    connection = database.engine.raw_connection()
    try:
        cursor = connection.cursor()
        settings = {}
        for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"):
            cursor.execute(f"PRAGMA {name}")
            row = cursor.fetchone()
            if row is None:
                raise BenchmarkError(f"PRAGMA {name} returned no row on the engine's SQLite connection.")
            settings[name] = str(row[0])
        return settings
    finally:
        connection.close()


@dataclass
class PostgresTarget:
    server_url: str  # a libpq URL without search_path
    schema: str

    @property
    def libpq_url(self) -> str:
        separator = "&" if "?" in self.server_url else "?"
        return f"{self.server_url}{separator}options=-csearch_path%3D{self.schema}"

    @property
    def url(self) -> str:
        return normalise_url(self.libpq_url)

    def stored_bytes(self) -> int:
        """Return the summed pg_total_relation_size (heap, indexes, TOAST) of the schema's tables."""
        query = text(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')"
        )
        admin = create_engine(normalise_url(self.server_url))
        try:
            with admin.connect() as connection:
                return int(connection.execute(query, {"schema": self.schema}).scalar_one())
        finally:
            admin.dispose()

    def replay(self, transactions: Sequence[RecordedTransaction], database: Database) -> float:
        setup, measured = split_setup(transactions)
        with psycopg.connect(self.libpq_url) as connection:
            cursor = connection.cursor()
            for transaction in setup:
                replay_statements(cursor, transaction.writes)
                connection.commit()
            start = time.perf_counter()
            for transaction in measured:
                replay_statements(cursor, transaction.writes)
                connection.commit()
            return time.perf_counter() - start


@contextmanager
def sqlite_targets() -> Iterator[tuple[Target, Target]]:
    with tempfile.TemporaryDirectory(prefix="sagsflow-bench-") as folder:
        yield SqliteTarget(Path(folder) / "engine.db"), SqliteTarget(Path(folder) / "baseline.db")


@contextmanager
def postgresql_targets(postgres_url: str) -> Iterator[tuple[Target, Target]]:
    """Create a schema for the engine run and one for the baseline, and drop both afterwards."""
    parsed = make_url(normalise_url(postgres_url)).set(drivername="postgresql")
    server_url = parsed.render_as_string(hide_password=False)
    base = f"sagsflow_bench_{uuid.uuid4().hex[:12]}"
    schemas = [base, f"{base}_baseline"]
    admin = create_engine(normalise_url(server_url))
    try:
        try:
            with admin.begin() as connection:
                for schema in schemas:
                    connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        except OperationalError as error:
            raise BenchmarkError(
                f"PostgreSQL at {parsed.render_as_string(hide_password=True)} is not reachable. Start it, pass "
                f"--postgres-url, or run with --backend sqlite. The driver reported: {error.orig}"
            ) from None
        try:
            yield PostgresTarget(server_url, schemas[0]), PostgresTarget(server_url, schemas[1])
        finally:
            with admin.begin() as connection:
                for schema in schemas:
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


# Driving cases through the engine ----------------------------------------------------------

DRAFT_DECISION = {
    "decision_outcome": "granted",
    "decision_text": "Miljøstyrelsen giver tilladelse til indførslen som ansøgt.",
    "statement_of_reasons": "Arten er opført på bilag A eller B, og betingelserne i artikel 4 er opfyldt.",
}


def load_applications() -> list[dict[str, Any]]:
    paths = sorted(EXAMPLES_DIR.glob("*.json"))
    if not paths:
        raise BenchmarkError(f"No example applications found in {EXAMPLES_DIR}.")
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


class CaseDriver:
    """Drive one case at a time from submission to closing through the service facade."""

    def __init__(self, service: Sagsflow, recorder: StatementRecorder) -> None:
        self.service = service
        self.recorder = recorder

    def run_case(self, application: Mapping[str, Any]) -> None:
        data = copy.deepcopy(application["data"])
        with self.recorder.command("submit"):
            view = self.service.submit(APPLICANT, PROCESS_ID, data, application.get("language"))
        self.dispatch()  # the receipt letter

        view = self.complete(view, "completeness_check", {"application_complete": True})
        view = self.complete(view, "export_permit_check", {"export_permit_verified": True})
        # The engine activates this step for species on EU Annex A (examples 02 and 03).
        if "scientific_opinion" in view["active_steps"]:
            view = self.complete(view, "scientific_opinion", {"scientific_authority_opinion": "positive"})
        view = self.complete(
            view,
            "fact_assessment",
            {"assessment_note": "Oplysningerne er kontrolleret.", "consultation_required": False},
        )
        view = self.complete(view, "draft_decision", DRAFT_DECISION)

        with self.recorder.command("approve decision_approval"):
            view = self.service.approve(
                APPROVER, view["id"], "decision_approval", "approve", None, view["version"], "da"
            )
        self.dispatch()  # the decision letter

        view = self.complete(view, "closing_check", {})
        if view["status"] != CaseStatus.CLOSED:
            raise BenchmarkError(
                f"Case {view['journal_number']} ended in phase {view['phase']['id']} with status {view['status']} "
                "instead of closed. Update the benchmark's path to match the CITES process."
            )

    def complete(self, view: Mapping[str, Any], step_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
        with self.recorder.command(f"complete_step {step_id}"):
            return self.service.complete_step(CASEWORKER, view["id"], step_id, data, view["version"], "da")

    def dispatch(self) -> None:
        with self.recorder.command("dispatch_outbox"):
            report = self.service.dispatch_outbox()
        if report.retried or report.failed:
            raise BenchmarkError(f"Letter delivery failed: {report.retried} to retry, {report.failed} failed.")


# One backend -------------------------------------------------------------------------------


@dataclass
class BackendResult:
    backend: str
    cases: int
    engine_seconds: float
    cases_per_second: float
    completed_steps: int
    skipped_steps: int
    steps_per_second: float
    bytes_per_case: float
    baseline_seconds: float
    baseline_ratio: float
    replayed_transactions: int
    replayed_statements: int
    engine_row_counts: dict[str, int]
    baseline_row_counts: dict[str, int]
    row_counts_match: bool
    rows_identical: bool
    commands: dict[str, CommandStats]


@dataclass
class EngineRun:
    seconds: float
    bytes_grown: int
    completed_steps: int
    skipped_steps: int
    transactions: list[RecordedTransaction]
    commands: dict[str, CommandStats]


def run_engine(target: Target, cases: int, definitions: LoadedDefinitions) -> EngineRun:
    applications = load_applications()
    database = Database(target.url)
    try:
        upgrade(database)
        recorder = StatementRecorder(database.engine)
        services = Services(
            species=OfflineSpeciesPlus(), companies=FakeCompanyRegister(), digital_post=MemoryDigitalPost()
        )
        service = Sagsflow(database, services)
        with recorder.command(SETUP):
            service.deploy(definitions, "benchmark")
        bytes_before = target.stored_bytes()

        driver = CaseDriver(service, recorder)
        start = time.perf_counter()
        for number in range(cases):
            driver.run_case(applications[number % len(applications)])
        seconds = time.perf_counter() - start

        recorder.detach()
        recorder.check()
        completed, skipped = check_lifecycle(database, cases)
    finally:
        database.dispose()
    return EngineRun(
        seconds=seconds,
        bytes_grown=target.stored_bytes() - bytes_before,
        completed_steps=completed,
        skipped_steps=skipped,
        transactions=recorder.transactions,
        commands={label: stats for label, stats in recorder.stats.items() if label != SETUP},
    )


def check_lifecycle(database: Database, cases: int) -> tuple[int, int]:
    """Check that every case closed and every letter was sent, and return the completed and skipped step counts."""
    with database.read() as session:
        closed = session.scalar(select(func.count()).select_from(Case).where(Case.status == CaseStatus.CLOSED))
        unsent_letters = session.scalar(
            select(func.count())
            .select_from(Document)
            .where(Document.kind == DocumentKind.LETTER, Document.status != DocumentStatus.SENT)
        )
        pending = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status != OutboxStatus.SENT)
        )
        completed = session.scalar(select(func.count()).select_from(CaseStep).where(CaseStep.status == StepStatus.DONE))
        skipped = session.scalar(
            select(func.count()).select_from(CaseStep).where(CaseStep.status == StepStatus.SKIPPED)
        )
    if closed != cases:
        raise BenchmarkError(f"Only {closed} of {cases} cases are closed after the run, expected all of them.")
    if unsent_letters or pending:
        raise BenchmarkError(f"{unsent_letters} letters and {pending} outbox messages were not sent.")
    return completed or 0, skipped or 0


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every table, ordered by primary key, including Alembic's version table."""
    reader = create_engine(url)
    try:
        with reader.connect() as connection:
            rows = {
                table.name: [tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key))]
                for table in Base.metadata.sorted_tables
            }
            version_rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            rows["alembic_version"] = [tuple(row) for row in version_rows]
            return rows
    finally:
        reader.dispose()


def measure_backend(backend: str, cases: int, postgres_url: str, definitions: LoadedDefinitions) -> BackendResult:
    targets = sqlite_targets() if backend == "sqlite" else postgresql_targets(postgres_url)
    with targets as (engine_target, baseline_target):
        run = run_engine(engine_target, cases, definitions)

        baseline = Database(baseline_target.url)
        try:
            upgrade(baseline)
            baseline_seconds = baseline_target.replay(run.transactions, baseline)
        finally:
            baseline.dispose()

        engine_rows = table_rows(engine_target.url)
        baseline_rows = table_rows(baseline_target.url)

    engine_counts = {name: len(rows) for name, rows in engine_rows.items()}
    baseline_counts = {name: len(rows) for name, rows in baseline_rows.items()}
    if engine_counts != baseline_counts:
        differences = {
            name: (engine_counts.get(name), baseline_counts.get(name))
            for name in sorted(engine_counts.keys() | baseline_counts.keys())
            if engine_counts.get(name) != baseline_counts.get(name)
        }
        raise BenchmarkError(f"Row counts (engine, baseline) differ after the replay on {backend}: {differences}")
    differing = [name for name in engine_rows if engine_rows[name] != baseline_rows[name]]
    if differing:
        raise BenchmarkError(f"Row contents differ after the replay on {backend} in tables: {', '.join(differing)}")

    replayed = [transaction for transaction in run.transactions if transaction.command != SETUP]
    return BackendResult(
        backend=backend,
        cases=cases,
        engine_seconds=run.seconds,
        cases_per_second=cases / run.seconds,
        completed_steps=run.completed_steps,
        skipped_steps=run.skipped_steps,
        steps_per_second=run.completed_steps / run.seconds,
        bytes_per_case=run.bytes_grown / cases,
        baseline_seconds=baseline_seconds,
        baseline_ratio=run.seconds / baseline_seconds,
        replayed_transactions=len(replayed),
        replayed_statements=sum(len(transaction.writes) for transaction in replayed),
        engine_row_counts=engine_counts,
        baseline_row_counts=baseline_counts,
        row_counts_match=True,
        rows_identical=True,
        commands=run.commands,
    )


# Report ------------------------------------------------------------------------------------


def format_report(results: Sequence[BackendResult]) -> str:
    lines = [
        f"{'backend':<11} {'cases':>6} {'engine s':>9} {'cases/s':>8} {'steps/s':>8} {'bytes/case':>11} "
        f"{'baseline s':>11} {'engine/baseline':>16}",
    ]
    for result in results:
        lines.append(
            f"{result.backend:<11} {result.cases:>6} {result.engine_seconds:>9.2f} {result.cases_per_second:>8.1f} "
            f"{result.steps_per_second:>8.1f} {result.bytes_per_case:>11.0f} {result.baseline_seconds:>11.2f} "
            f"{result.baseline_ratio:>16.1f}"
        )
    lines += ["", BASELINE_NOTE]
    for result in results:
        lines += [
            "",
            f"{result.backend}: {result.completed_steps} completed and {result.skipped_steps} skipped step "
            f"instances; {result.replayed_statements} write statements in {result.replayed_transactions} "
            "transactions replayed; row counts and contents match.",
            f"{'per call (mean)':<34} {'calls':>6} {'ms':>7} {'txns':>5} {'reads':>6} {'writes':>7} "
            f"{'control':>8} {'checkouts':>10}",
        ]
        for label, stats in sorted(result.commands.items()):
            calls = stats.calls or 1
            lines.append(
                f"{label:<34} {stats.calls:>6} {1000 * stats.seconds / calls:>7.2f} {stats.transactions / calls:>5.1f} "
                f"{stats.reads / calls:>6.1f} {stats.writes / calls:>7.1f} {stats.control / calls:>8.1f} "
                f"{stats.checkouts / calls:>10.1f}"
            )
    return "\n".join(lines)


def build_report(results: Sequence[BackendResult]) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "sqlite_version": sqlite3.sqlite_version,
        "baseline": BASELINE_NOTE,
        "backends": {result.backend: asdict(result) for result in results},
    }


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.lifecycle",
        description="Drive CITES import cases from submission to closing and compare with a plain-SQL baseline.",
    )
    parser.add_argument(
        "--cases", type=positive_int, default=DEFAULT_CASES, help="number of cases per backend (default: %(default)s)"
    )
    parser.add_argument(
        "--backend",
        choices=[*BACKENDS, "both"],
        default="both",
        help="database to run against (default: %(default)s)",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="PostgreSQL server URL. The benchmark creates and drops two schemas there (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON to PATH")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and return the report as a JSON-ready dictionary."""
    arguments = parse_arguments(argv)
    # The benchmark runs CITES import cases only; loading the other processes would only cost time.
    definitions = load_definitions(REPOSITORY, [REPOSITORY / "processes" / "afgoerelse" / "cites-import.yaml"])
    if definitions.errors:
        problems = "; ".join(problem.format("en") for problem in definitions.errors)
        raise BenchmarkError(f"The repository's definitions have errors: {problems}")

    backends = BACKENDS if arguments.backend == "both" else (arguments.backend,)
    results = [measure_backend(backend, arguments.cases, arguments.postgres_url, definitions) for backend in backends]
    print(format_report(results))

    report = build_report(results)
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    try:
        main()
    except BenchmarkError as error:
        sys.exit(f"Benchmark failed: {error}")
