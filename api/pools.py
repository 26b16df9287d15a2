"""The pool case (puljesag) over HTTP: budget and ranking, ledger movements and reconciliation.

Every route only reads and needs a staff token that may see the pool case. The ledger is
written by the steps of the pool case and its applications.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from api.deps import ActorDep, LanguageDep, get_service
from engine.pools import PoolLedger

router = APIRouter()


def get_pools(request: Request) -> PoolLedger:
    return PoolLedger(get_service(request))


PoolsDep = Annotated[PoolLedger, Depends(get_pools)]


@router.get("/cases/{case_ref}/pool", tags=["pools"])
def pool_overview(case_ref: str, actor: ActorDep, pools: PoolsDep, language: LanguageDep) -> dict[str, Any]:
    """Return the pool's budget, its balances in øre and its applications ranked by points."""
    return pools.overview(actor, case_ref, language)


@router.get("/cases/{case_ref}/pool/ledger", tags=["pools"])
def pool_ledger(case_ref: str, actor: ActorDep, pools: PoolsDep) -> dict[str, Any]:
    """List every movement of the pool's ledger, oldest first, with amounts in øre."""
    return {"items": pools.entries(actor, case_ref)}


@router.get("/cases/{case_ref}/pool/reconciliation", tags=["pools"])
def pool_reconciliation(case_ref: str, actor: ActorDep, pools: PoolsDep, language: LanguageDep) -> dict[str, Any]:
    """Reconcile the pool per case and per transaction; `ok` is false when anything disagrees."""
    return pools.reconcile(actor, case_ref, language)
