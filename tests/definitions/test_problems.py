"""The problem catalog: bilingual messages, and its documentation in docs/definition-errors.md."""

from __future__ import annotations

import re

from engine.definitions.problems import CATALOG, Location, make_problem
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
