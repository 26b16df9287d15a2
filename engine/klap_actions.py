"""Automatic actions for klap; registered in `engine.actions.ACTIONS`."""

from __future__ import annotations

from engine.action_types import Action

KLAP_ACTIONS: tuple[Action, ...] = ()
