"""The registry of automatic actions that `kind: action` steps name in YAML.

YAML names an action (`action: species_plus_lookup`) and gives its parameters; the
name is looked up in `ACTIONS`, never imported as a dotted path. Each action declares
a pydantic model for its parameters and which fields it reads and writes, so that
validation catches a wrong parameter or field before anything is deployed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from engine.adapters.cvr import CompanyRegister
from engine.adapters.species import SpeciesRegister
from engine.definitions.model import Identifier


class ActionContext(Protocol):
    """What an action may see and change while it runs inside a case command."""

    @property
    def species(self) -> SpeciesRegister: ...

    @property
    def companies(self) -> CompanyRegister: ...

    def value(self, field: str) -> Any: ...

    def set_value(self, field: str, value: Any) -> None: ...


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class FieldUse:
    """A field an action reads or writes, named by one of its parameters."""

    param: str
    field: str
    types: frozenset[str]
    writes: bool


@dataclass(frozen=True)
class Action:
    name: str
    params: type[Params]
    run: Callable[[ActionContext, Any], str]
    """Carries out the action and returns the step's outcome, such as "found"."""
    uses: Callable[[Any], list[FieldUse]]


class CvrLookupParams(Params):
    field: Identifier
    name_field: Identifier
    status_field: Identifier


def _cvr_uses(params: CvrLookupParams) -> list[FieldUse]:
    return [
        FieldUse("field", params.field, frozenset({"cvr"}), writes=False),
        FieldUse("name_field", params.name_field, frozenset({"text"}), writes=True),
        FieldUse("status_field", params.status_field, frozenset({"text"}), writes=True),
    ]


def _cvr_lookup(context: ActionContext, params: CvrLookupParams) -> str:
    number = context.value(params.field)
    if not number:
        return "not_applicable"
    company = context.companies.lookup(number)
    if company is None:
        context.set_value(params.status_field, "UKENDT")
        return "not_found"
    context.set_value(params.name_field, company.name)
    context.set_value(params.status_field, company.status)
    return "found" if company.status == "NORMAL" else "ceased"


class SpeciesLookupParams(Params):
    field: Identifier
    appendix_field: Identifier
    annex_field: Identifier


def _species_uses(params: SpeciesLookupParams) -> list[FieldUse]:
    return [
        FieldUse("field", params.field, frozenset({"species"}), writes=False),
        FieldUse("appendix_field", params.appendix_field, frozenset({"enum", "text"}), writes=True),
        FieldUse("annex_field", params.annex_field, frozenset({"enum", "text"}), writes=True),
    ]


def _species_lookup(context: ActionContext, params: SpeciesLookupParams) -> str:
    taxon = context.species.find(context.value(params.field) or "")
    if taxon is None:
        return "not_found"
    context.set_value(params.appendix_field, taxon.cites_appendix)
    context.set_value(params.annex_field, taxon.eu_annex)
    return "found"


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action("cvr_lookup", CvrLookupParams, _cvr_lookup, _cvr_uses),
        Action("species_plus_lookup", SpeciesLookupParams, _species_lookup, _species_uses),
    )
}
