"""Case records: uploaded documents, notes, chat messages and the audit trail."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
