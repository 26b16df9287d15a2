"""Example values built from a process's field schema.

A field's `example:` wins. Without one, the value is made from the field's type and its
limits: the first option of an `enum`, the minimum of a number, a date some days ahead,
a short Danish text. The values are what a client would send, so they pass through the
same parsing as a real application. They serve `sagsflow example`, which prints an
application a designer can start from, and the test that drives every process to its end.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from engine.definitions.model import FieldDef, ResolvedProcess, StepDef

# Days between "today" and a generated date: far enough ahead for a planned date or a
# compliance deadline, and well within any validity period.
DATE_OFFSET_DAYS = 30

# About 1.2 km by 1.1 km of farmland near Silkeborg, inside Denmark's bounding box.
EXAMPLE_AREA: dict[str, Any] = {
    "type": "Polygon",
    "coordinates": [[[9.50, 56.17], [9.52, 56.17], [9.52, 56.18], [9.50, 56.18], [9.50, 56.17]]],
}

# Values for the types whose valid values come from a register or a checksum.
_FIXED: dict[str, Any] = {
    "email": "post@eksempel.dk",
    "cvr": "90131443",
    "cpr": "010190-1234",
    "country": "DK",
    "postcode": "8600",
    "species": "Python regius",
    "harbour": "AAR",
    "dumping_site": "K_101",
    "natura2000_site": "N1",
}

_TEXT = "Eksempel"
_LONG_TEXT = "Eksempel på en tekst, som sagsbehandleren eller ansøgeren har skrevet."


class NoExample(Exception):
    """A field whose valid values cannot be guessed: it needs an `example:`."""

    def __init__(self, field_id: str, reason: str) -> None:
        super().__init__(f"{field_id}: {reason}")
        self.field_id = field_id
        self.reason = reason


def example_value(field_id: str, field: FieldDef, today: date) -> Any:
    """Return a value `field` accepts: its `example`, or one made from its type and limits."""
    if field.example is not None:
        return field.example
    kind = field.type
    if kind in _FIXED:
        return _FIXED[kind]
    if kind == "boolean":
        return True
    if kind == "enum":
        if not field.options:
            raise NoExample(field_id, "an enum without options")
        return field.options[0].value
    if kind in ("integer", "decimal", "money"):
        return _number(field, integer=kind == "integer")
    if kind == "date":
        return (today + timedelta(days=DATE_OFFSET_DAYS)).isoformat()
    if kind == "text":
        return _text(field_id, field)
    if kind == "geometry":
        return EXAMPLE_AREA
    if kind == "parties":
        return [{"name": "Eksempel ApS", "cvr": "90131443"}]
    raise NoExample(field_id, f"no example for the field type '{kind}'")


def _number(field: FieldDef, *, integer: bool) -> Any:
    value = field.min if field.min is not None else Decimal(1)
    if field.max is not None and value > field.max:
        value = field.max
    if integer:
        # A whole number inside [min, max]: the minimum rounded up.
        whole = int(value) if value == int(value) else int(value) + 1
        return whole
    return str(value)


def _text(field_id: str, field: FieldDef) -> str:
    if field.pattern is not None:
        raise NoExample(field_id, f"a text with the pattern {field.pattern!r} needs an example")
    text = _LONG_TEXT if field.multiline else _TEXT
    if field.min_length is not None and len(text) < field.min_length:
        text = (text + " ") * (field.min_length // (len(text) + 1) + 1)
        text = text.strip()
    if field.max_length is not None:
        text = text[: field.max_length].strip() or "x"
    return text


def example_application(process: ResolvedProcess, today: date) -> dict[str, Any]:
    """Return every application field of `process` with an example value.

    An optional field whose values cannot be guessed is left out; a required one raises
    `NoExample`.
    """
    data: dict[str, Any] = {}
    for field_id, field in process.fields.items():
        if field.source != "application":
            continue
        try:
            data[field_id] = example_value(field_id, field, today)
        except NoExample:
            if field.required:
                raise
    return data


def example_form(process: ResolvedProcess, step: StepDef, today: date) -> dict[str, Any]:
    """Return every field of `step`'s form with an example value."""
    return {entry.field: example_value(entry.field, process.fields[entry.field], today) for entry in step.form}
