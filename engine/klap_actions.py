"""Actions of the KLAP permit: register look-ups and the dumping site's capacity in m³.

Every approved dumping site has an approved capacity, and the permits granted for it
share that capacity through a ledger account of kind `site` (engine/runtime/ledger.py).
The account is opened with the register's capacity when the first permit for the site
is granted. The remaining capacity is the capacity minus what granted permits hold.

    klap_register_lookup    writes the names of the harbour and the dumping site
    site_capacity_check     at submission: rejects an application for more than the
                            site has left, before anything is stored
    site_capacity_allocate  when a permit is granted: commits the granted volume for
                            the case; the command fails if another permit took the
                            room in the meantime

Both capacity actions can write what is left to a field, for the caseworker and letters.
"""

from __future__ import annotations

import logging

from engine.action_types import Action, ActionContext, FieldUse, Params
from engine.adapters.klap import DumpingSite
from engine.definitions.model import Identifier
from engine.errors import Conflict, ProcessFault
from engine.i18n import Text
from engine.runtime import ledger
from engine.storage.tables import LedgerAccount

logger = logging.getLogger(__name__)


def _site_name(site: DumpingSite) -> Text:
    return Text(f"Klappladsen {site.code} ({site.name})", f"The dumping site {site.code} ({site.name})")


def _m3(amount: int) -> Text:
    return Text(
        ledger.format_quantity(ledger.CUBIC_METRES, amount), ledger.format_quantity(ledger.CUBIC_METRES, amount, "en")
    )


def _site(context: ActionContext, code: str) -> DumpingSite:
    """Look the case's dumping site up, or raise ProcessFault when the register no longer lists it."""
    site = context.services.klap.dumping_site(code)
    if site is None:
        raise ProcessFault(
            Text(
                f"Klappladsen '{code}' i sag {context.case_reference} findes ikke længere i registret over "
                "klappladser; intet er ændret.",
                f"The dumping site '{code}' of case {context.case_reference} is no longer in the register of "
                "dumping sites; nothing was changed.",
            )
        )
    return site


def remaining_capacity(context: ActionContext, site: DumpingSite) -> int:
    """Return the site's capacity in the register minus what permits hold of it, never below 0."""
    account = ledger.find_account(context.session, ledger.SITE, site.code)
    if account is None:
        return site.capacity_m3
    held = ledger.balances(context.session, account)
    return max(site.capacity_m3 - held.reserved - held.committed - held.paid, 0)


# klap_register_lookup ------------------------------------------------------------------------


class RegisterLookupParams(Params):
    harbour_field: Identifier
    harbour_name_field: Identifier
    site_field: Identifier
    site_name_field: Identifier


def _lookup_uses(params: RegisterLookupParams) -> list[FieldUse]:
    return [
        FieldUse("harbour_field", params.harbour_field, frozenset({"harbour"}), writes=False),
        FieldUse("harbour_name_field", params.harbour_name_field, frozenset({"text"}), writes=True),
        FieldUse("site_field", params.site_field, frozenset({"dumping_site"}), writes=False),
        FieldUse("site_name_field", params.site_name_field, frozenset({"text"}), writes=True),
    ]


def _register_lookup(context: ActionContext, params: RegisterLookupParams) -> str:
    register = context.services.klap
    harbour = register.harbour(context.value(params.harbour_field) or "")
    site = register.dumping_site(context.value(params.site_field) or "")
    if harbour is not None:
        context.set_value(params.harbour_name_field, harbour.name)
    if site is not None:
        context.set_value(params.site_name_field, site.name)
    return "found" if harbour is not None and site is not None else "not_found"


# site_capacity_check -------------------------------------------------------------------------


class CapacityParams(Params):
    site_field: Identifier
    volume_field: Identifier
    remaining_field: Identifier | None = None


def _capacity_uses(params: CapacityParams) -> list[FieldUse]:
    uses = [
        FieldUse("site_field", params.site_field, frozenset({"dumping_site"}), writes=False),
        FieldUse("volume_field", params.volume_field, frozenset({"integer"}), writes=False),
    ]
    if params.remaining_field is not None:
        uses.append(FieldUse("remaining_field", params.remaining_field, frozenset({"integer"}), writes=True))
    return uses


def _capacity_check(context: ActionContext, params: CapacityParams) -> str:
    code = context.value(params.site_field)
    volume = context.value(params.volume_field)
    if not code or volume is None:
        return "not_applicable"

    site = _site(context, code)
    remaining = remaining_capacity(context, site)
    if volume > remaining:
        name, left, asked = _site_name(site), _m3(remaining), _m3(volume)
        raise Conflict(
            Text(
                f"{name.da} har {left.da} tilbage af sin godkendte kapacitet, så der er ikke plads til de "
                f"{asked.da}, der søges om. Ansøgningen er ikke modtaget.",
                f"{name.en} has {left.en} left of its approved capacity, so there is no room for the "
                f"{asked.en} applied for. The application was not received.",
            ),
            code="capacity_exceeded",
            field=f"data.{params.volume_field}",
            hint=Text(
                f"Søg om højst {left.da}, eller vælg en anden klapplads.",
                f"Apply for at most {left.en}, or choose another dumping site.",
            ),
            available=remaining,
            requested=volume,
        )

    if params.remaining_field is not None:
        context.set_value(params.remaining_field, remaining)
    return "within_capacity"


# site_capacity_allocate ----------------------------------------------------------------------


def _site_account(context: ActionContext, site: DumpingSite) -> LedgerAccount:
    """Return the site's account, locked, opening it with the register's capacity if it has none yet."""
    return ledger.open_account(
        context.session, ledger.SITE, site.code, ledger.CUBIC_METRES, site.capacity_m3, context.now
    )


def _allocate(context: ActionContext, params: CapacityParams) -> str:
    code = context.value(params.site_field)
    volume = context.value(params.volume_field)
    if not code or not volume:
        return "not_applicable"

    site = _site(context, code)
    name = _site_name(site)
    if not site.approved:
        raise Conflict(
            Text(
                f"{name.da} er lukket, så tilladelsen kan ikke gives til den. Intet er ændret.",
                f"{name.en} is closed, so the permit cannot be granted for it. Nothing was changed.",
            ),
            code="dumping_site_closed",
            hint=Text(
                "Afvis udkastet, og skriv et nyt udkast med afslag eller med en anden klapplads.",
                "Reject the draft, and write a new draft that refuses the application or names another site.",
            ),
        )

    account = _site_account(context, site)
    if account.total != site.capacity_m3:
        # The register is the source of the approved capacity, so the ledger follows it.
        ledger.set_total(context.session, account, site.capacity_m3, what=name)

    movement = ledger.commit(
        context.session,
        account,
        context.case.id,
        volume,
        context.actor.name,
        context.now,
        what=name,
        reference=context.case_reference,
    )
    for entry in movement.describe(account.unit):
        context.record("ledger", {**entry, "site": site.code})
    logger.info("Case %s committed %d m³ on dumping site %s", context.case_reference, volume, site.code)

    if params.remaining_field is not None:
        context.set_value(params.remaining_field, ledger.balances(context.session, account).available)
    return "allocated"


KLAP_ACTIONS: tuple[Action, ...] = (
    Action("klap_register_lookup", RegisterLookupParams, _register_lookup, _lookup_uses, ("found", "not_found")),
    Action(
        "site_capacity_check", CapacityParams, _capacity_check, _capacity_uses, ("within_capacity", "not_applicable")
    ),
    Action("site_capacity_allocate", CapacityParams, _allocate, _capacity_uses, ("allocated", "not_applicable")),
)
