"""Automatic actions for gis; registered in `engine.actions.ACTIONS`."""

from __future__ import annotations

from engine.action_types import Action

GIS_ACTIONS: tuple[Action, ...] = ()
