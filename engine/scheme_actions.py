"""Automatic actions for scheme; registered in `engine.actions.ACTIONS`."""

from __future__ import annotations

from engine.action_types import Action

SCHEME_ACTIONS: tuple[Action, ...] = ()
