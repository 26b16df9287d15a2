"""Automatic actions for ledger; registered in `engine.actions.ACTIONS`."""

from __future__ import annotations

from engine.action_types import Action

LEDGER_ACTIONS: tuple[Action, ...] = ()
