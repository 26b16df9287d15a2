"""Automatic actions for GIS; registered in `engine.actions.ACTIONS`.

`natura2000_overlap` measures how much of a case's drawn area lies inside the Natura 2000
site that the case names, with the register in `Services.protected_sites`:

    - id: site_overlap
      kind: action
      action: natura2000_overlap
      params: {field: area, site_field: natura2000_site, inside_field: inside_ha, share_field: inside_share}

Its outcome is `inside` (at least INSIDE_SHARE_PERCENT of the area), `partly_inside`,
`outside` (less than 1 m² inside the site, see MIN_OVERLAP_SQUARE_METRES in
engine/adapters/natura2000.py) or `not_applicable` (no area or no site).
"""

from __future__ import annotations

from decimal import Decimal

from engine.action_types import Action, ActionContext, FieldUse, Params
from engine.definitions.model import Identifier
from engine.errors import ProcessFault
from engine.i18n import Text

# An area counts as inside its site from this share up, so that a border drawn a few metres
# off the site's boundary does not make a whole application "partly inside".
INSIDE_SHARE_PERCENT = Decimal("99.5")


class Natura2000OverlapParams(Params):
    field: Identifier
    site_field: Identifier
    inside_field: Identifier
    share_field: Identifier | None = None


def _natura2000_overlap_uses(params: Natura2000OverlapParams) -> list[FieldUse]:
    uses = [
        FieldUse("field", params.field, frozenset({"geometry"}), writes=False),
        FieldUse("site_field", params.site_field, frozenset({"natura2000_site"}), writes=False),
        FieldUse("inside_field", params.inside_field, frozenset({"decimal"}), writes=True),
    ]
    if params.share_field is not None:
        uses.append(FieldUse("share_field", params.share_field, frozenset({"decimal"}), writes=True))
    return uses


def _natura2000_overlap(context: ActionContext, params: Natura2000OverlapParams) -> str:
    geometry = context.value(params.field)
    number = context.value(params.site_field)
    if not geometry or not number:
        return "not_applicable"

    sites = context.services.protected_sites
    site = sites.find(number)
    if site is None:
        # The field type accepted the number when it was entered, so the register has changed since.
        raise ProcessFault(
            Text(
                f"Natura 2000-området {number} findes ikke længere i registret over Natura 2000-områder, så "
                "overlappet kan ikke beregnes. Ret områdets nummer på sagen, eller kontakt en administrator.",
                f"The Natura 2000 site {number} is no longer in the register of Natura 2000 sites, so the "
                "overlap cannot be measured. Correct the site number on the case, or contact an administrator.",
            ),
            code="unknown_natura2000_site",
        )

    overlap = sites.overlap(geometry, site.number)
    context.set_value(params.inside_field, str(overlap.inside_ha))
    if params.share_field is not None:
        context.set_value(params.share_field, str(overlap.share_percent))

    if overlap.share_percent >= INSIDE_SHARE_PERCENT:
        return "inside"
    if overlap.intersects:
        return "partly_inside"
    return "outside"


GIS_ACTIONS: tuple[Action, ...] = (
    Action(
        "natura2000_overlap",
        Natura2000OverlapParams,
        _natura2000_overlap,
        _natura2000_overlap_uses,
        ("inside", "partly_inside", "outside", "not_applicable"),
    ),
)
