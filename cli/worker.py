"""The background worker: outbox delivery, timers, hearing deadlines and escalation."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sagsflow` application."""
