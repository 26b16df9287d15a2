"""Check values sent for case fields (an application or a task form) against their types.

All problems are collected and raised together as one `InvalidInput`, each naming the
field as `data.<field>` with the field's Danish and English label, what is wrong and
how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.definitions.compile import CompiledCheck, CompiledProcess
from engine.definitions.fields import FieldValueError, Lookups
from engine.errors import FieldErrors
from engine.i18n import Text

MAX_FIELDS_PER_REQUEST = 200


def _label(process: CompiledProcess, name: str) -> Text:
    field = process.fields[name]
    return Text(da=f"{field.label.da} ({name})", en=f"{field.label.en} ({name})")


def parse_values(
    process: CompiledProcess,
    raw: Mapping[str, Any],
    allowed: Mapping[str, bool],
    lookups: Lookups,
    *,
    existing: Mapping[str, Any] | None = None,
    conditional: Mapping[str, Callable[[Mapping[str, Any]], bool]] | None = None,
    context: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    what: Text,
) -> dict[str, Any]:
    """Parse `raw` against the fields in `allowed` (field → required) and return stored values.

    A required field is satisfied by a value in `raw` or already in `existing`. A field in
    `conditional` is required when its guard holds on the merged values. `what` names the
    form in messages, e.g. "the application".
    """
    errors = FieldErrors()
    if len(raw) > MAX_FIELDS_PER_REQUEST:
        errors.add(
            "data",
            "too_many_fields",
            Text(
                f"For mange felter ({len(raw)}); højst {MAX_FIELDS_PER_REQUEST} er tilladt.",
                f"Too many fields ({len(raw)}); at most {MAX_FIELDS_PER_REQUEST} are allowed.",
            ),
        )
        errors.raise_if_any()

    known = ", ".join(sorted(allowed)) or "(ingen/none)"
    parsed: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in allowed:
            errors.add(
                f"data.{name}",
                "unknown_field",
                Text(
                    f"Feltet '{name}' hører ikke til {what.da}.",
                    f"The field '{name}' is not part of {what.en}.",
                ),
                Text(f"Tilladte felter: {known}.", f"Allowed fields: {known}."),
            )
            continue
        if value is None:
            continue
        field = process.fields[name]
        try:
            parsed[name] = process.field_types[name].parse(value, field, lookups)
        except FieldValueError as error:
            label = _label(process, name)
            errors.add(
                f"data.{name}",
                error.code,
                Text(da=f"{label.da}: {error.text.da}", en=f"{label.en}: {error.text.en}"),
                error.hint,
            )

    merged = {**(existing or {}), **parsed}
    failed = {error.field for error in errors.errors}
    # A condition over a value that failed to parse would see None and could claim a field
    # is required when it is not, so conditions are only evaluated on clean input.
    conditions_context = context(merged) if context is not None and not errors.errors else None
    for name, always_required in allowed.items():
        guard = (conditional or {}).get(name)
        required = always_required or (
            guard is not None and conditions_context is not None and guard(conditions_context)
        )
        if required and merged.get(name) in (None, "") and f"data.{name}" not in failed:
            label = _label(process, name)
            errors.add(
                f"data.{name}",
                "required",
                Text(f"{label.da} skal udfyldes.", f"{label.en} is required."),
            )
    errors.raise_if_any()
    return parsed


def enforce_checks(checks: Sequence[CompiledCheck], context: Mapping[str, Any]) -> None:
    """Raise `InvalidInput` listing every check whose rule does not hold on `context`."""
    errors = FieldErrors()
    for check in checks:
        if not check.rule(context):
            errors.add("data", "check_failed", check.message.text())
    errors.raise_if_any()
