"""Hearings: opening one from a case step, and the parties' reply links."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
