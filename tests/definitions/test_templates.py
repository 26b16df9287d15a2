"""Letter templates and the case title: problems reported at the template's own file and line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MemoryDigitalPost
from engine.adapters.species import OfflineSpeciesPlus
from engine.definitions.loader import load_definitions
from engine.definitions.resolve import LETTER_CHECK_ENVIRONMENT
from engine.definitions.templates import LetterRenderer
from engine.definitions.validate import LETTER_OBJECT_KEYS
from engine.runtime.letters import hearing_context, letter_context, report_context
from engine.runtime.services import Services
from engine.storage.tables import Case
from tests.definitions.conftest import LoadProcess
from tests.definitions.helpers import DEMO_FILE, SKELETON_FILE, demo, formatted, single, write
from tests.helpers import CITES_IMPORT, REPOSITORY

RECEIPT_LETTER = """\
letters:
  receipt:
    template: {da: demo/receipt.da.md.j2}
"""
BOTH_LANGUAGES = """\
letters:
  receipt:
    template: {da: demo/receipt.da.md.j2, en: demo/receipt.en.md.j2}
"""
RECEIPT_TEMPLATE = "processes/afgoerelse/demo/receipt.da.md.j2"
PART_TEMPLATE = "processes/afgoerelse/demo/_part.md.j2"
SKELETON_RECEIPT = "skeletons/letters/receipt.da.md.j2"
SKELETON_HEADER = "skeletons/letters/_header.da.md.j2"


def test_unknown_filter_is_reported_at_template_line(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "Kære {{ applicant_name }}\n\n{{ decision_text | uper }}\n")
    loaded = load_process(demo(RECEIPT_LETTER))
    problem = single(loaded)

    assert problem.format("en") == (
        f"{RECEIPT_TEMPLATE}:3:1: SF311 The letter template '{RECEIPT_TEMPLATE}' (letter 'receipt') cannot be used: "
        "the filter 'uper' does not exist. Check the spelling. The letter filters are date, kr, country and label; "
        "Jinja2's built-in filters and tests can be used too."
    )
    assert problem.format("da") == (
        f"{RECEIPT_TEMPLATE}:3:1: SF311 Brevskabelonen '{RECEIPT_TEMPLATE}' (brevet 'receipt') kan ikke bruges: "
        "filteret 'uper' findes ikke. Tjek stavningen. Brevfiltrene er date, kr, country og label; Jinja2's "
        "indbyggede filtre og tests kan også bruges."
    )
    assert loaded.compiled == {}


def test_unknown_filter_fails_validate_command_normally(root: Path) -> None:
    write(root, RECEIPT_TEMPLATE, "{{ decision_text | uper }}\n")
    write(root, DEMO_FILE, demo(RECEIPT_LETTER))
    result = CliRunner().invoke(app, ["--lang", "en", "validate", "--root", str(root)])

    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(f"{RECEIPT_TEMPLATE}:1:1: SF311 ")
    assert "Internal error" not in result.output


def test_unknown_test_is_reported(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "{% if fee is positiv %}\nGebyr\n{% endif %}\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert str(problem.location) == f"{RECEIPT_TEMPLATE}:1:1"
    assert problem.text.en.endswith("cannot be used: the test 'positiv' does not exist.")


def test_unknown_filter_and_variable_reported_together(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "{{ applicant_nmae }}\n{{ fee | krr }}\n")
    loaded = load_process(demo(RECEIPT_LETTER))

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [
        ("SF312", f"{RECEIPT_TEMPLATE}:1:1"),
        ("SF311", f"{RECEIPT_TEMPLATE}:2:1"),
    ]


def test_letter_filters_match_renderer() -> None:
    # Validation must accept exactly the filters and tests that letters are rendered with.
    renderer = LetterRenderer({}, {})

    for environment in renderer._environments.values():
        assert set(environment.filters) == set(LETTER_CHECK_ENVIRONMENT.filters)
        assert set(environment.tests) == set(LETTER_CHECK_ENVIRONMENT.tests)


def test_private_attribute_in_template(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "Kære {{ applicant_name }}\n{{ applicant_name.__class__ }}\n{{ fee['_x'] }}\n")
    loaded = load_process(demo(RECEIPT_LETTER))

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [
        ("SF311", f"{RECEIPT_TEMPLATE}:2:1"),
        ("SF311", f"{RECEIPT_TEMPLATE}:3:1"),
    ]
    assert loaded.problems[0].text.en.endswith(
        "cannot be used: '__class__' starts with an underscore, and internal Python attributes are not available."
    )
    assert loaded.problems[1].text.da.endswith(
        "kan ikke bruges: '_x' starter med en understregning, og interne Python-attributter er ikke tilgængelige."
    )
    assert loaded.compiled == {}


def test_broken_danish_template_has_no_missing_key(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "{% if %}\n")
    write(root, "processes/afgoerelse/demo/receipt.en.md.j2", "Dear {{ applicant_name }}\n")
    loaded = load_process(demo(BOTH_LANGUAGES))

    assert [problem.code for problem in loaded.problems] == ["SF311"]


def test_missing_danish_template_has_no_missing_key(root: Path, load_process: LoadProcess) -> None:
    write(root, "processes/afgoerelse/demo/receipt.en.md.j2", "Dear {{ applicant_name }}\n")
    problem = single(load_process(demo(BOTH_LANGUAGES)))

    assert problem.code == "SF311"
    assert str(problem.location) == f"{DEMO_FILE}:10:20"


def test_missing_include_reported_at_include_line(root: Path, load_process: LoadProcess) -> None:
    write(
        root, RECEIPT_TEMPLATE, 'Kære {{ applicant_name }}\n\n{% include "processes/afgoerelse/demo/_nope.md.j2" %}\n'
    )
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert str(problem.location) == f"{RECEIPT_TEMPLATE}:3:1"
    assert problem.text.en.startswith(
        "The letter template 'processes/afgoerelse/demo/_nope.md.j2' (letter 'receipt') cannot be used: the file "
        "does not exist."
    )


def test_optional_include_of_missing_file(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, '{% include "processes/afgoerelse/demo/_nope.md.j2" ignore missing %}\n')

    assert formatted(load_process(demo(RECEIPT_LETTER))) == []


def test_computed_include_name(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "Kære {{ applicant_name }}\n{% include applicant_name ~ '.md.j2' %}\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert str(problem.location) == f"{RECEIPT_TEMPLATE}:2:1"
    assert problem.text.en.endswith(
        "cannot be used: the name of a template in extends, include or import must be a fixed text."
    )


def test_syntax_error_in_included_template(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, f'{{% include "{PART_TEMPLATE}" %}}\n')
    write(root, PART_TEMPLATE, "Linje 1\n{% for %}\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert str(problem.location) == f"{PART_TEMPLATE}:2:1"
    assert problem.text.en.startswith(f"The letter template '{PART_TEMPLATE}' (letter 'receipt') cannot be used:")


def test_unknown_variable_at_first_use(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "Kære {{ applicant_name }}\n\n{{ permit_colour }}\n{{ permit_colour }}\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert str(problem.location) == f"{RECEIPT_TEMPLATE}:3:1"
    assert problem.format("da").startswith(
        f"{RECEIPT_TEMPLATE}:3:1: SF312 Brevskabelonen '{RECEIPT_TEMPLATE}' (brevet 'receipt') bruger den ukendte "
        "variabel 'permit_colour'. Kendte variabler: "
    )


def test_skeleton_template_problem_reported_once(root: Path, load_process: LoadProcess) -> None:
    # The header is included by every skeleton letter and checked for the skeleton and the process.
    header = root / SKELETON_HEADER
    header.write_text(header.read_text(encoding="utf-8") + "{{ authority.name | upper | shout }}\n", "utf-8")
    loaded = load_process(demo())
    problem = single(loaded)

    assert problem.code == "SF311"
    assert problem.location.file == SKELETON_HEADER
    assert "(letter 'receipt')" in problem.text.en
    assert loaded.compiled == {}


def test_skeleton_template_error_blocks_process_not_using_it(root: Path, load_process: LoadProcess) -> None:
    receipt = root / SKELETON_RECEIPT
    receipt.write_text(receipt.read_text(encoding="utf-8") + "{{ receipt_colour }}\n", "utf-8")
    write(root, RECEIPT_TEMPLATE, "Kære {{ applicant_name }}\n")
    loaded = load_process(demo(RECEIPT_LETTER))

    assert [(problem.code, problem.location.file) for problem in loaded.problems] == [("SF312", SKELETON_RECEIPT)]
    assert loaded.compiled == {}


def test_skeleton_template_lacking_locked_block(root: Path, load_process: LoadProcess) -> None:
    decision = root / "skeletons/letters/decision.da.md.j2"
    text = decision.read_text(encoding="utf-8")
    start = text.index("{% block reasons %}")
    end = text.index("{% endblock %}", start) + len("{% endblock %}")
    decision.write_text(text[:start] + text[end:], "utf-8")
    problem = single(load_process(demo()))

    assert problem.format("en").startswith(
        "skeletons/letters/decision.da.md.j2:1:1: SF313 The letter 'decision' is locked by the skeleton: the "
        "skeleton template lacks the blocks reasons."
    )


def test_every_template_problem_has_hint(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "{{ fee | nope }}\n{{ fee.__dict__ }}\n{% include fee %}\n")
    letters = RECEIPT_LETTER + "  information_request:\n    template: {da: demo/missing.da.md.j2}\n"
    loaded = load_process(demo(letters))

    assert len(loaded.problems) == 4, formatted(loaded)
    for problem in loaded.problems:
        assert problem.code == "SF311"
        assert problem.hint is not None
        assert problem.hint.da != problem.hint.en


# Attributes of the letter's objects and the label filter ------------------------------------


def test_misspelt_case_attribute(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "Kære {{ applicant_name }}\n\nJournalnummer: {{ case.journal_nummer }}\n")
    loaded = load_process(demo(RECEIPT_LETTER))
    problem = single(loaded)

    assert problem.format("en") == (
        f"{RECEIPT_TEMPLATE}:3:1: SF312 The letter template '{RECEIPT_TEMPLATE}' (letter 'receipt') uses the "
        "unknown variable 'case.journal_nummer'. Known variables: case.journal_number, case.title, case.received, "
        "case.processing_deadline, case.language (did you mean 'case.journal_number'?)."
    )
    assert problem.hint is not None
    assert problem.hint.da.endswith("(mente du 'case.journal_number'?).")
    assert loaded.compiled == {}


@pytest.mark.parametrize(
    ("expression", "name", "suggestion"),
    [
        ("process.titel", "process.titel", "process.title"),
        ("authority.adress", "authority.adress", "authority.address"),
        ("appeal['periode']", "appeal.periode", "appeal.period"),
        ("recipient.cvr", "recipient.cvr", None),
    ],
)
def test_unknown_object_attribute(
    root: Path, load_process: LoadProcess, expression: str, name: str, suggestion: str | None
) -> None:
    write(root, RECEIPT_TEMPLATE, f"{{{{ {expression} }}}}\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert problem.code == "SF312"
    assert problem.text.en.endswith(f"uses the unknown variable '{name}'.")
    assert problem.hint is not None
    if suggestion is None:
        assert "did you mean" not in problem.hint.en
    else:
        assert problem.hint.en.endswith(f"(did you mean '{suggestion}'?).")


def test_every_object_attribute_is_accepted(root: Path, load_process: LoadProcess) -> None:
    lines = [f"{{{{ {name}.{key} }}}}" for name, keys in LETTER_OBJECT_KEYS.items() for key in keys]
    write(root, RECEIPT_TEMPLATE, "\n".join(lines) + "\n{{ deadlines.information_received }}\n")

    assert formatted(load_process(demo(RECEIPT_LETTER))) == []


def test_object_name_assigned_in_template_is_not_checked(root: Path, load_process: LoadProcess) -> None:
    text = (
        "{% set recipient = {'title': applicant_name} %}{{ recipient.title }}\n"
        "{% for case in [decision_text] %}{{ case.upper() }}{% endfor %}\n"
    )
    write(root, RECEIPT_TEMPLATE, text)

    assert formatted(load_process(demo(RECEIPT_LETTER))) == []


def test_object_keys_match_letter_context() -> None:
    # The keys validation accepts must be the keys the runtime gives every letter, a hearing letter and a
    # scheme's request letter.
    process = load_definitions(REPOSITORY, [REPOSITORY / CITES_IMPORT]).compiled["cites-import"]
    now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    case = Case(data={}, journal_number="2026-000001", title="T", received_at=now, language="da")
    services = Services(species=OfflineSpeciesPlus(), companies=FakeCompanyRegister(), digital_post=MemoryDigitalPost())
    context = letter_context(case, process, services, now, "da")
    party = {"name": "Havnen A/S", "id_type": "CVR", "id": "90131443"}
    context["hearing"] = hearing_context("hearing", party, now, "http://127.0.0.1:8000/hearing-replies/x", {})
    context["report"] = report_context("2026", now, "http://127.0.0.1:8000/report-replies/x")

    for name, keys in LETTER_OBJECT_KEYS.items():
        assert sorted(context[name]) == sorted(keys), name


def test_label_filter_with_unknown_field(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "Kære {{ applicant_name }}\n{{ decision_outcome | label('decison_outcome') }}\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert problem.format("en") == (
        f"{RECEIPT_TEMPLATE}:2:1: SF311 The letter template '{RECEIPT_TEMPLATE}' (letter 'receipt') cannot be used: "
        "the filter label names the field 'decison_outcome', which does not exist. Name an enum field of the "
        "process: decision_outcome (did you mean 'decision_outcome'?)."
    )
    assert problem.format("da").endswith(
        "filteret label nævner feltet 'decison_outcome', som ikke findes. Nævn et enum-felt i processen: "
        "decision_outcome (mente du 'decision_outcome'?)."
    )


def test_label_filter_with_field_of_other_type(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "{{ decision_text | label(field='decision_text') }}\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert problem.code == "SF311"
    assert problem.text.en.endswith(
        "the filter label names the field 'decision_text' of type text, but label shows only the labels of an enum "
        "field's options."
    )


def test_label_filter_without_field(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "{{ decision_outcome | label }}\n")
    problem = single(load_process(demo(RECEIPT_LETTER)))

    assert problem.code == "SF311"
    assert problem.text.en.endswith("the filter label lacks the name of an enum field.")


def test_label_filter_with_enum_field(root: Path, load_process: LoadProcess) -> None:
    write(root, RECEIPT_TEMPLATE, "{{ decision_outcome | label('decision_outcome') }}\n")

    assert formatted(load_process(demo(RECEIPT_LETTER))) == []


# The case title ------------------------------------------------------------------------------


def test_case_title_with_unknown_name(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("case_title: '{{ applicant_nmae }} – {{ applicant_city }}'\n")))

    assert problem.format("en").startswith(
        f"{DEMO_FILE}:8:13: SF312 The case title (case_title) uses the unknown variable 'applicant_nmae'. "
        "Known variables: applicant_address, applicant_city, "
    )
    assert problem.format("da").startswith(
        f"{DEMO_FILE}:8:13: SF312 Sagstitlen (case_title) bruger den ukendte variabel 'applicant_nmae'."
    )
    assert problem.hint is not None
    assert "letter_date" not in problem.hint.en


def test_case_title_with_fields_is_valid(load_process: LoadProcess) -> None:
    loaded = load_process(demo("case_title: '{{ applicant_name | upper }} ({{ applicant_postcode }})'\n"))

    assert formatted(loaded) == []


def test_case_title_with_private_attribute(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("case_title: '{{ applicant_name.__class__ }}'\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:8:13: SF202 Invalid value for 'case_title': '__class__' starts with an underscore, and "
        "internal Python attributes are not available."
    )


def test_case_title_syntax_error_in_danish(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("case_title: '{{ applicant_name'\n")))

    assert problem.format("da") == (
        f"{DEMO_FILE}:8:13: SF202 Ugyldig værdi for 'case_title': Jinja2 melder: unexpected end of template, "
        "expected 'end of print statement' (linje 1)."
    )


def test_skeleton_case_title_checked_against_skeleton_fields(root: Path) -> None:
    skeleton = root / SKELETON_FILE
    text = skeleton.read_text(encoding="utf-8")
    skeleton.write_text(text.replace('case_title: "{{ applicant_name }}"', 'case_title: "{{ specie }}"'), "utf-8")
    loaded = load_definitions(root)

    assert [(problem.code, str(problem.location)) for problem in loaded.problems] == [
        ("SF312", f"{SKELETON_FILE}:28:13")
    ]
