"""Bulk benchmark: a scheme case's bulk run against the same number of cases created one by one.

Run as ``python -m bench.bulk``, and see ``--help`` for the options. For each backend and
each size N (default 200 and 10,000), the script

1. fills a fresh database with a KLAP scheme case and N members, copied from the example
   population in ``examples/klap/`` with a unique key each (not timed);
2. times one bulk run, which creates N annual-report request cases with their letters
   (`engine.runtime.schemes.Schemes.run_requests`);
3. runs the bulk again for another year under `tracemalloc`, for its peak memory;
4. times N calls of `Sagsflow.submit` of the same request process with the same values in a
   second fresh database: the one-by-one path, each case with its request letter.

It reports, per backend and size, both times, cases per second, their ratio and the bulk
run's peak memory, and checks the targets: the bulk run at least 10 times faster than one
by one, and the peak memory for the largest size at most twice that for the smallest.
docs/benchmarks.md explains the figures.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import logging
import os
import platform
import sqlite3
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.lifecycle import DEFAULT_POSTGRES_URL, BenchmarkError, Target, postgresql_targets, sqlite_targets
from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MemoryDigitalPost
from engine.adapters.species import OfflineSpeciesPlus
from engine.auth import Actor
from engine.calendar import next_working_day
from engine.definitions.loader import LoadedDefinitions, load_definitions
from engine.runtime.audit import verify_chain
from engine.runtime.schemes import Schemes
from engine.runtime.services import Services
from engine.service import Sagsflow
from engine.storage.database import Database
from engine.storage.migrate import upgrade
from engine.storage.tables import Case, Document, OutboxMessage, SchemeRequest

REPOSITORY = Path(__file__).resolve().parent.parent
POPULATION = REPOSITORY / "examples" / "klap" / "klap-tilladelser.csv"
SCHEME_PROCESS = "klap-ordningssag"
REQUEST_PROCESS = "klap-aarligt-tilsyn"
BACKENDS = ("sqlite", "postgresql")
DEFAULT_SIZES = (200, 10_000)
CHUNK_SIZE = 200
SPEED_TARGET = 10.0
MEMORY_TARGET = 2.0
# The bulk run's audit chains verified after each timed run: all of them up to this many, else a sample.
VERIFIED_CHAINS = 200

CASEWORKER = Actor("bench-caseworker", frozenset({"caseworker"}), ("klap",))
# A fixed clock in January, when the requests for the previous year go out.
NOW = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)
PERIOD = "2026"
# The second run, under tracemalloc, is for an earlier year with a later deadline of its own.
MEMORY_PERIOD = "2025"
MEMORY_REPLY_BY = date(2027, 3, 1)


@dataclass
class SizeResult:
    backend: str
    cases: int
    bulk_seconds: float
    bulk_cases_per_second: float
    one_by_one_seconds: float
    one_by_one_cases_per_second: float
    ratio: float
    bulk_peak_bytes: int
    chunks: int


# The population ------------------------------------------------------------------------------


def population(size: int) -> list[dict[str, str]]:
    """Return `size` member rows, cycling through the example permits with a unique key each."""
    with POPULATION.open(encoding="utf-8", newline="") as file:
        examples = list(csv.DictReader(file))
    rows = []
    for index in range(size):
        row = dict(examples[index % len(examples)])
        row["member_key"] = f"{row['member_key']}-{index // len(examples):03d}"
        rows.append(row)
    return rows


def members_csv(rows: Sequence[dict[str, str]]) -> bytes:
    lines = [",".join(rows[0])] + [",".join(_cell(value) for value in row.values()) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _cell(value: str) -> str:
    return f'"{value}"' if "," in value else value


def request_values(row: dict[str, str]) -> dict[str, Any]:
    """Return the application a caseworker would submit one by one: what the scheme fills from a member."""
    return {
        "subject_name": row["applicant_name"],
        "subject_cvr": row["applicant_cvr"],
        "subject_address": row["applicant_address"],
        "subject_postcode": row["applicant_postcode"],
        "subject_city": row["applicant_city"],
        "harbour": row["harbour"],
        "harbour_name": row["harbour_name"],
        "dumping_site": row["dumping_site"],
        "dumping_site_name": row["dumping_site_name"],
        "permitted_volume_m3": int(row["granted_volume_m3"]),
        "permit_valid_until": row["period_end"],
        "report_year": int(PERIOD),
        "permit_reference": row["member_key"],
    }


# Engines on fresh databases ------------------------------------------------------------------


def engine_on(target: Target, definitions: LoadedDefinitions) -> Sagsflow:
    database = Database(target.url)
    upgrade(database)
    services = Services(
        species=OfflineSpeciesPlus(),
        companies=FakeCompanyRegister(),
        digital_post=MemoryDigitalPost(),
        clock=lambda: NOW,
    )
    service = Sagsflow(database, services)
    service.deploy(definitions, "bench")
    return service


@contextmanager
def targets(backend: str, postgres_url: str) -> Iterator[tuple[Target, Target]]:
    with sqlite_targets() if backend == "sqlite" else postgresql_targets(postgres_url) as pair:
        yield pair


def measure(backend: str, size: int, postgres_url: str, definitions: LoadedDefinitions) -> SizeResult:
    rows = population(size)
    with targets(backend, postgres_url) as (bulk_target, single_target):
        bulk = engine_on(bulk_target, definitions)
        try:
            scheme = bulk.submit(CASEWORKER, SCHEME_PROCESS, {"scheme_name": "KLAP-tilladelser"}, "da")
            schemes = Schemes(bulk)
            schemes.import_members(CASEWORKER, scheme["id"], members_csv(rows), "csv")

            gc.collect()
            start = time.perf_counter()
            report = schemes.run_requests(CASEWORKER, scheme["id"], PERIOD, chunk_size=CHUNK_SIZE)
            bulk_seconds = time.perf_counter() - start
            check_bulk(bulk, size, report.created)

            gc.collect()
            tracemalloc.start()
            try:
                schemes.run_requests(
                    CASEWORKER, scheme["id"], MEMORY_PERIOD, chunk_size=CHUNK_SIZE, reply_by=MEMORY_REPLY_BY
                )
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        finally:
            bulk.database.dispose()

        single = engine_on(single_target, definitions)
        try:
            gc.collect()
            start = time.perf_counter()
            for row in rows:
                single.submit(CASEWORKER, REQUEST_PROCESS, request_values(row), "da")
            single_seconds = time.perf_counter() - start
            check_one_by_one(single, size)
        finally:
            single.database.dispose()

    return SizeResult(
        backend=backend,
        cases=size,
        bulk_seconds=bulk_seconds,
        bulk_cases_per_second=size / bulk_seconds,
        one_by_one_seconds=single_seconds,
        one_by_one_cases_per_second=size / single_seconds,
        ratio=single_seconds / bulk_seconds,
        bulk_peak_bytes=peak,
        chunks=report.chunks,
    )


def _count(service: Sagsflow, model: Any, *conditions: Any) -> int:
    with service.database.read() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


def check_bulk(service: Sagsflow, size: int, created: int) -> None:
    """Fail unless the bulk run created one case, letter, message and request per member, with sound audit chains."""
    counts = {
        "created": created,
        "cases": _count(service, Case, Case.process_id == REQUEST_PROCESS),
        "letters": _count(service, Document, Document.kind == "letter"),
        "outbox messages": _count(service, OutboxMessage),
        "requests": _count(service, SchemeRequest),
    }
    wrong = {name: number for name, number in counts.items() if number != size}
    if wrong:
        raise BenchmarkError(f"The bulk run for {size} members left {wrong}, not {size} of each.")
    with service.database.read() as session:
        ids = list(session.scalars(select(Case.id).where(Case.process_id == REQUEST_PROCESS).order_by(Case.id)))
        step = max(1, len(ids) // VERIFIED_CHAINS)
        for case_id in ids[::step]:
            report = verify_chain(session, case_id)
            if not report.ok:
                raise BenchmarkError(f"The audit chain of case {case_id} does not verify: {report.problem}")


def check_one_by_one(service: Sagsflow, size: int) -> None:
    cases = _count(service, Case, Case.process_id == REQUEST_PROCESS)
    letters = _count(service, Document, Document.kind == "letter")
    if (cases, letters) != (size, size):
        raise BenchmarkError(f"One by one, {size} submissions left {cases} cases and {letters} letters.")


# Report --------------------------------------------------------------------------------------


def memory_ratios(results: Sequence[SizeResult]) -> dict[str, float]:
    """Return, per backend, the peak memory of the largest size divided by that of the smallest."""
    ratios = {}
    for backend in dict.fromkeys(result.backend for result in results):
        own = sorted((result for result in results if result.backend == backend), key=lambda result: result.cases)
        ratios[backend] = own[-1].bulk_peak_bytes / own[0].bulk_peak_bytes
    return ratios


def format_report(results: Sequence[SizeResult]) -> str:
    lines = [
        f"{'backend':<11} {'cases':>6} {'bulk s':>8} {'bulk cases/s':>13} {'1-by-1 s':>9} {'1-by-1 cases/s':>15} "
        f"{'ratio':>6} {'bulk peak MB':>13}"
    ]
    for result in results:
        lines.append(
            f"{result.backend:<11} {result.cases:>6} {result.bulk_seconds:>8.2f} {result.bulk_cases_per_second:>13.0f} "
            f"{result.one_by_one_seconds:>9.2f} {result.one_by_one_cases_per_second:>15.1f} {result.ratio:>6.1f} "
            f"{result.bulk_peak_bytes / 1_000_000:>13.2f}"
        )
    lines.append("")
    slowest = min(result.ratio for result in results)
    lines.append(
        f"Speed: the bulk run is at least {slowest:.1f} times as fast as one by one "
        f"(target {SPEED_TARGET:.0f}): {'met' if slowest >= SPEED_TARGET else 'NOT met'}."
    )
    for backend, ratio in memory_ratios(results).items():
        lines.append(
            f"Memory on {backend}: the largest size peaks at {ratio:.2f} times the smallest "
            f"(target at most {MEMORY_TARGET:.0f}): {'met' if ratio <= MEMORY_TARGET else 'NOT met'}."
        )
    return "\n".join(lines)


def build_report(results: Sequence[SizeResult]) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "sqlite_version": sqlite3.sqlite_version,
        "chunk_size": CHUNK_SIZE,
        "results": [asdict(result) for result in results],
        "slowest_ratio": min(result.ratio for result in results),
        "memory_ratios": memory_ratios(results),
        "speed_target_met": all(result.ratio >= SPEED_TARGET for result in results),
        "memory_target_met": all(ratio <= MEMORY_TARGET for ratio in memory_ratios(results).values()),
    }


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bulk",
        description="Time a scheme case's bulk run against the same number of cases created one by one.",
    )
    parser.add_argument(
        "--sizes",
        type=positive_int,
        nargs="+",
        default=list(DEFAULT_SIZES),
        help="numbers of members to run with (default: %(default)s)",
    )
    parser.add_argument(
        "--backend", choices=[*BACKENDS, "both"], default="both", help="database to run against (default: %(default)s)"
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="PostgreSQL server; the script works in schemas of its own (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON to PATH")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and return the report as a JSON-ready dictionary."""
    arguments = parse_arguments(argv)
    definitions = load_definitions(REPOSITORY)
    if definitions.errors:
        problems = "; ".join(problem.format("en") for problem in definitions.errors)
        raise BenchmarkError(f"The repository's definitions have errors: {problems}")

    backends = BACKENDS if arguments.backend == "both" else (arguments.backend,)
    sizes = sorted(set(arguments.sizes))
    # Load the public holidays of the years the deadlines fall in before anything is timed, so that
    # whichever path runs first does not pay the one-time cost alone.
    for year in range(NOW.year - 1, NOW.year + 6):
        next_working_day(date(year, 1, 1))
    results = [measure(backend, size, arguments.postgres_url, definitions) for backend in backends for size in sizes]
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
