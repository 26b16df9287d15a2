"""`sagsflow portfolio`: the agency's processes by skeleton, rollout priority and status.

    sagsflow portfolio [PATHS...] [--root DIR] [--csv FILE] [--json]

The definitions come from the files (through the cache), the status from the database:
deployed, changed since deployment, or not deployed. With `--csv` the map is written to a
file (UTF-8 with a byte order mark, one row per process); `--csv -` writes it to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import count, fail, open_service, reported_errors, say, state

if TYPE_CHECKING:
    from engine.definitions.loader import LoadedDefinitions

PRIORITY_LABELS = {
    1: {"da": "Prioritet 1 (først)", "en": "Priority 1 (first)"},
    2: {"da": "Prioritet 2", "en": "Priority 2"},
    3: {"da": "Prioritet 3 (sidst)", "en": "Priority 3 (last)"},
    None: {"da": "Uden plan", "en": "No plan"},
}


def register(app: typer.Typer, load: Callable[[list[Path] | None, Path | None], LoadedDefinitions]) -> None:
    """Add the command to `app`; `load(paths, root)` loads the definitions as `validate` does."""

    @app.command()
    def portfolio(
        paths: Annotated[
            list[Path] | None,
            typer.Argument(help="Filer eller mapper; standard: alle processer / files or folders; default: all."),
        ] = None,
        root: Annotated[
            Path | None, typer.Option("--root", help="Mappen med skeletons/ og processes/ / the definitions folder.")
        ] = None,
        csv_file: Annotated[
            str | None, typer.Option("--csv", help="Skriv oversigten som CSV til FIL ('-' for stdout) / write CSV.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")] = False,
    ) -> None:
        """Vis procesoversigten efter skelet, prioritet og status / show the process map."""
        from engine.portfolio import (  # noqa: PLC0415 - keeps `validate` fast
            STATUS_LABELS,
            deployed_versions,
            portfolio_rows,
            to_csv,
        )

        loaded = load(paths, root)
        if loaded.errors:
            raise fail(
                f"{count(len(loaded.errors), 'fejl', 'fejl')} i definitionerne; kør 'sagsflow validate' først.",
                f"{count(len(loaded.errors), 'error', 'errors')} in the definitions; run 'sagsflow validate' first.",
            )
        with reported_errors():
            deployed = deployed_versions(open_service().database)
        rows = portfolio_rows(loaded.compiled.values(), deployed)
        language = state.language

        if csv_file is not None:
            data = to_csv(rows)
            if csv_file == "-":
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
                return
            try:
                Path(csv_file).write_bytes(data)
            except OSError as error:
                raise fail(
                    f"Kunne ikke skrive {csv_file}: {error.strerror}.", f"Could not write {csv_file}: {error.strerror}."
                ) from None
            typer.echo(
                say(
                    f"Skrev {count(len(rows), 'proces', 'processer')} til {csv_file}.",
                    f"Wrote {count(len(rows), 'process', 'processes')} to {csv_file}.",
                ),
                err=True,
            )
            return
        if as_json:
            typer.echo(json.dumps([asdict(row) for row in rows], ensure_ascii=False, indent=2))
            return

        # The rows come sorted by family, skeleton and priority, so each group is one run.
        for skeleton, skeleton_rows in groupby(rows, key=lambda row: row.skeleton):
            in_skeleton = list(skeleton_rows)
            family = in_skeleton[0].family
            deployed_count = sum(row.status == "deployed" for row in in_skeleton)
            typer.echo(
                say(
                    f"\n{skeleton} ({family}): {count(len(in_skeleton), 'proces', 'processer')}, "
                    f"{deployed_count} udrullet",
                    f"\n{skeleton} ({family}): {count(len(in_skeleton), 'process', 'processes')}, "
                    f"{deployed_count} deployed",
                )
            )
            for priority, priority_rows in groupby(in_skeleton, key=lambda row: row.priority):
                typer.echo(f"  {PRIORITY_LABELS[priority][language]}")
                for row in priority_rows:
                    hours = row.hours_saved_per_year
                    saved = say(f"{hours} timer/år", f"{hours} h/year") if hours is not None else "-"
                    cases = row.cases_per_year if row.cases_per_year is not None else "-"
                    typer.echo(
                        f"    {row.process:<44} {STATUS_LABELS[row.status][language]:<24} "
                        f"{cases:>6} {say('sager/år', 'cases/yr')}  {saved}"
                    )

        total_hours = sum(row.hours_saved_per_year or 0 for row in rows)
        deployed_total = sum(row.status == "deployed" for row in rows)
        typer.echo(
            "\n"
            + say(
                f"I alt {count(len(rows), 'proces', 'processer')}, {deployed_total} udrullet; "
                f"forventet besparelse {total_hours} timer om året.",
                f"In all {count(len(rows), 'process', 'processes')}, {deployed_total} deployed; "
                f"expected saving {total_hours} hours a year.",
            )
        )
        missing = sum(row.priority is None for row in rows)
        if missing:
            typer.echo(
                say(
                    f"{count(missing, 'proces', 'processer')} har ingen 'portfolio:' og mangler en plan.",
                    f"{count(missing, 'process has', 'processes have')} no 'portfolio:' and lack a plan.",
                )
            )
