"""The problem catalog: bilingual messages, and its documentation in docs/definition-errors.md."""

from __future__ import annotations

import re
from decimal import Decimal
from enum import Enum
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, ValidationError

from engine.definitions.problems import CATALOG, Location, make_problem, pydantic_detail
from engine.i18n import Text
from tests.helpers import REPOSITORY

DOC = REPOSITORY / "docs" / "definition-errors.md"
HEADING = re.compile(r"^### (SF\d{3}) (\S+)$", re.MULTILINE)


def test_text_parameter_fills_each_language() -> None:
    problem = make_problem(
        "SF303",
        Location("demo.yaml", 9, 13),
        name="decision_letter",
        skeleton="afgoerelse",
        operation=Text("fjernes", "removed"),
    )

    assert problem.text.en.endswith("and cannot be removed.")
    assert problem.text.da.endswith("og kan ikke fjernes.")


def test_plain_parameter_fills_both_languages() -> None:
    problem = make_problem("SF300", Location("demo.yaml", 2, 10), name="tilsyn", known="afgoerelse")

    assert problem.format("en") == (
        "demo.yaml:2:10: SF300 'tilsyn' is neither a skeleton nor a process. Known skeletons: afgoerelse. "
        "A process may also extend another process by its id."
    )
    assert problem.format("da") == (
        "demo.yaml:2:10: SF300 'tilsyn' er hverken et skelet eller en proces. Kendte skeletter: afgoerelse. "
        "En proces kan også udvide en anden proces ved dens id."
    )


def test_warning_is_marked_in_both_languages() -> None:
    problem = make_problem(
        "SF322", Location("processes/x/demo.yaml", 1, 10), name="demo", skeleton="afgoerelse", folder="x"
    )

    assert problem.severity == "warning"
    assert " SF322 warning: " in problem.format("en")
    assert " SF322 advarsel: " in problem.format("da")


def test_doc_lists_every_code_in_catalog_order() -> None:
    documented = HEADING.findall(DOC.read_text(encoding="utf-8"))

    assert [code for code, _ in documented] == list(CATALOG)


def test_doc_uses_catalog_names() -> None:
    documented = dict(HEADING.findall(DOC.read_text(encoding="utf-8")))

    for code, entry in CATALOG.items():
        assert documented.get(code) == entry.name, code


def test_doc_states_each_severity() -> None:
    text = DOC.read_text(encoding="utf-8")
    sections = re.split(r"^### ", text, flags=re.MULTILINE)[1:]

    for section in sections:
        code = section.split()[0]
        assert f"Severity: {CATALOG[code].severity}." in section, code
        assert "Triggered " in section, code
        assert "Fix: " in section, code


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Cat(_Strict):
    kind: Literal["cat"]


class _Dog(_Strict):
    kind: Literal["dog"]


class _Colour(Enum):
    RED = "red"
    BLUE = "blue"


class _Everything(_Strict):
    missing: int
    text: str
    whole: int
    strict_flag: StrictBool
    kind: Literal["task", "action", "letter"]
    at_least: int = Field(ge=0)
    at_most: int = Field(le=10)
    items: list[int] = Field(min_length=1)
    few: list[int] = Field(max_length=1)
    short: Annotated[str, StringConstraints(min_length=3)]
    long: Annotated[str, StringConstraints(max_length=1)]
    colour: _Colour
    amount: Decimal
    price: Decimal = Field(decimal_places=2)
    pet: _Cat | _Dog = Field(discriminator="kind")
    mapping: dict[str, int]
    sequence: list[int]


PYDANTIC_DETAILS = {
    "missing": ("værdien mangler", "the value is missing"),
    "extra_forbidden": ("nøglen er ukendt", "the key is not known"),
    "string_type": ("værdien skal være tekst", "the value must be text"),
    "int_parsing": ("værdien skal være et helt tal", "the value must be a whole number"),
    "bool_type": ("værdien skal være true eller false", "the value must be true or false"),
    "literal_error": (
        "værdien skal være 'task', 'action' eller 'letter'",
        "the value must be 'task', 'action' or 'letter'",
    ),
    "greater_than_equal": ("værdien skal være mindst 0", "the value must be at least 0"),
    "less_than_equal": ("værdien må højst være 10", "the value must be at most 10"),
    "too_short": ("listen skal have mindst 1 element", "the list must have at least 1 item"),
    "too_long": ("listen må højst have 1 element", "the list may have at most 1 item"),
    "string_too_short": ("teksten skal være mindst 3 tegn lang", "the text must be at least 3 characters long"),
    "string_too_long": ("teksten må højst være 1 tegn lang", "the text must be at most 1 character long"),
    "enum": ("værdien skal være 'red' eller 'blue'", "the value must be 'red' or 'blue'"),
    "decimal_parsing": ("værdien skal være et tal", "the value must be a number"),
    "decimal_max_places": ("værdien må højst have 2 decimaler", "the value may have at most 2 decimal places"),
    "union_tag_invalid": (
        "'fish' er ikke en af de tilladte værdier af 'kind': 'cat', 'dog'",
        "'fish' is not one of the allowed values of 'kind': 'cat', 'dog'",
    ),
    "dict_type": ("værdien skal være en mapping (nøgle: værdi)", "the value must be a mapping (key: value)"),
    "list_type": ("værdien skal være en liste", "the value must be a list"),
}


def test_pydantic_errors_in_both_languages() -> None:
    data = {
        "text": 1,
        "whole": "x",
        "strict_flag": 1,
        "kind": "z",
        "at_least": -1,
        "at_most": 11,
        "items": [],
        "few": [1, 2],
        "short": "a",
        "long": "ab",
        "colour": "green",
        "amount": "x",
        "price": "1.234",
        "pet": {"kind": "fish"},
        "mapping": [],
        "sequence": {},
        "unexpected": 1,
    }
    with pytest.raises(ValidationError) as raised:
        _Everything.model_validate(data)
    errors = raised.value.errors(include_url=False)

    translated = {error["type"]: pydantic_detail(error) for error in errors}
    assert set(translated) == set(PYDANTIC_DETAILS)
    for kind, (danish, english) in PYDANTIC_DETAILS.items():
        assert translated[kind] == Text(danish, english), kind


def test_rare_pydantic_error_keeps_its_message() -> None:
    error = {"type": "url_parsing", "msg": "Input should be a valid URL", "ctx": {"error": "x"}}

    assert pydantic_detail(error) == Text("Input should be a valid URL", "Input should be a valid URL")
