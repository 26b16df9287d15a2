"""Commands for users, teams and handing cases over."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sagsflow` application."""
