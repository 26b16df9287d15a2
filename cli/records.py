"""Commands for case records: uploaded documents, notes, chat and the audit trail."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sagsflow` application."""
