"""The registry of automatic actions that `kind: action` steps name in YAML.

YAML names an action (`action: species_plus_lookup`) and gives its parameters; the
name is looked up in `ACTIONS`, never imported as a dotted path. Each action declares
a pydantic model for its parameters and which fields it reads and writes, so that
validation catches a wrong parameter or field before anything is deployed.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

import shapely.geometry
from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field

from engine.action_types import Action, ActionContext, FieldUse, Params
from engine.adapters.natura2000 import hectares, project_to_utm32
from engine.definitions.expressions import Guard, compile_guard
from engine.definitions.model import Identifier, Label
from engine.gis_actions import GIS_ACTIONS
from engine.klap_actions import KLAP_ACTIONS
from engine.ledger_actions import LEDGER_ACTIONS
from engine.scheme_actions import SCHEME_ACTIONS


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


class MeasureAreaParams(Params):
    field: Identifier
    area_field: Identifier


def _measure_uses(params: MeasureAreaParams) -> list[FieldUse]:
    return [
        FieldUse("field", params.field, frozenset({"geometry"}), writes=False),
        FieldUse("area_field", params.area_field, frozenset({"decimal"}), writes=True),
    ]


def area_in_hectares(geometry: dict[str, Any]) -> Decimal:
    """Return the area of a WGS84 GeoJSON polygon in hectares, measured in ETRS89 / UTM zone 32N."""
    return hectares(project_to_utm32(shapely.geometry.shape(geometry)).area)


def _measure_area(context: ActionContext, params: MeasureAreaParams) -> str:
    geometry = context.value(params.field)
    if not geometry:
        return "not_applicable"
    context.set_value(params.area_field, str(area_in_hectares(geometry)))
    return "measured"


class Criterion(Params):
    label: Label
    points: int | str = Field(description="Points as a number, or an expression such as 'area_ha * 2'.")
    when: str | None = Field(default=None, description="Guard expression; the points count only when it holds.")


class ScoreParams(Params):
    field: Identifier
    criteria: list[Criterion] = Field(min_length=1)
    maximum: int | None = Field(default=None, ge=0)


def _score_uses(params: ScoreParams) -> list[FieldUse]:
    return [FieldUse("field", params.field, frozenset({"integer"}), writes=True)]


def _score_expressions(params: ScoreParams) -> list[tuple[tuple[str | int, ...], str]]:
    found: list[tuple[tuple[str | int, ...], str]] = []
    for index, criterion in enumerate(params.criteria):
        if isinstance(criterion.points, str):
            found.append((("criteria", index, "points"), criterion.points))
        if criterion.when is not None:
            found.append((("criteria", index, "when"), criterion.when))
    return found


_VALUES = SandboxedEnvironment()


@lru_cache(maxsize=1024)
def _cached_guard(source: str) -> Guard:
    return compile_guard(source)


@lru_cache(maxsize=1024)
def _value_expression(source: str) -> Any:
    return _VALUES.compile_expression(source, undefined_to_none=True)


def _score(context: ActionContext, params: ScoreParams) -> str:
    names = context.guard_context()
    total = Decimal(0)
    for criterion in params.criteria:
        if criterion.when is not None and not _cached_guard(criterion.when)(names):
            continue
        if isinstance(criterion.points, int):
            points: Any = criterion.points
        else:
            try:
                points = _value_expression(criterion.points)(**names)
            except (TypeError, ValueError, ArithmeticError, TemplateError):
                points = 0  # a field the expression needs is not filled in: no points
        try:
            total += Decimal(str(points or 0))
        except ArithmeticError:
            continue
    score = int(total.to_integral_value(rounding=ROUND_HALF_UP))
    if params.maximum is not None:
        score = min(score, params.maximum)
    context.set_value(params.field, max(score, 0))
    return "scored"


class DeMinimisParams(Params):
    cvr_field: Identifier
    amount_field: Identifier
    result_field: Identifier
    ceiling_eur: Decimal = Field(
        default=Decimal(300_000), gt=0, description="EUR 300,000 under Regulation (EU) 2023/2831."
    )
    eur_rate: Decimal = Field(default=Decimal("7.46"), gt=0, description="DKK per EUR used to convert the amount.")


def _de_minimis_uses(params: DeMinimisParams) -> list[FieldUse]:
    return [
        FieldUse("cvr_field", params.cvr_field, frozenset({"cvr"}), writes=False),
        FieldUse("amount_field", params.amount_field, frozenset({"money"}), writes=False),
        FieldUse("result_field", params.result_field, frozenset({"enum", "text"}), writes=True),
    ]


def _de_minimis_check(context: ActionContext, params: DeMinimisParams) -> str:
    number = context.value(params.cvr_field)
    amount_ore = context.value(params.amount_field)
    if not number or amount_ore is None:
        context.set_value(params.result_field, "not_applicable")
        return "not_applicable"
    # The ceiling applies over any period of three years: the last three years up to today.
    today = context.today
    since = (
        today.replace(year=today.year - 3)
        if not (today.month == 2 and today.day == 29)
        else date(today.year - 3, 2, 28)
    )
    received = sum((record.amount_eur for record in context.de_minimis.aid_received(number, since)), Decimal(0))
    requested = Decimal(amount_ore) / 100 / params.eur_rate
    result = "within" if received + requested <= params.ceiling_eur else "exceeded"
    context.set_value(params.result_field, result)
    return result


class LandRegistrationParams(Params):
    declaration: Label
    reference_field: Identifier


def _land_registration_uses(params: LandRegistrationParams) -> list[FieldUse]:
    return [FieldUse("reference_field", params.reference_field, frozenset({"text"}), writes=True)]


def _land_registration(context: ActionContext, params: LandRegistrationParams) -> str:
    registration = context.land_registry.register_declaration(
        context.case_reference, params.declaration.da, context.today
    )
    context.set_value(params.reference_field, registration.number)
    return "registered"


_OWN_ACTIONS = (
    Action("cvr_lookup", CvrLookupParams, _cvr_lookup, _cvr_uses, ("found", "not_found", "ceased", "not_applicable")),
    Action("species_plus_lookup", SpeciesLookupParams, _species_lookup, _species_uses, ("found", "not_found")),
    Action("measure_area", MeasureAreaParams, _measure_area, _measure_uses, ("measured", "not_applicable")),
    Action("score", ScoreParams, _score, _score_uses, ("scored",), _score_expressions),
    Action(
        "de_minimis_check",
        DeMinimisParams,
        _de_minimis_check,
        _de_minimis_uses,
        ("within", "exceeded", "not_applicable"),
    ),
    Action("land_registration", LandRegistrationParams, _land_registration, _land_registration_uses, ("registered",)),
)

ACTIONS: dict[str, Action] = {
    action.name: action for action in (*_OWN_ACTIONS, *GIS_ACTIONS, *LEDGER_ACTIONS, *KLAP_ACTIONS, *SCHEME_ACTIONS)
}
