"""Users, teams, tokens with scopes, and handing a case or step over to someone else."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
