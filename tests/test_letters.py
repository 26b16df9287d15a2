"""Letters rendered from the shipped templates: header, tables, plain text and escaping.

Most tests render through the compiled CITES process and the engine's `letter_context`
without a database. The last one submits an application over HTTP and reads the receipt
letter the engine stored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MemoryDigitalPost
from engine.adapters.species import OfflineSpeciesPlus
from engine.definitions.compile import CompiledProcess
from engine.definitions.loader import load_definitions
from engine.definitions.templates import (
    LETTER_NAMES,
    LetterRenderer,
    RenderedLetter,
    analyse_template,
    escape_markdown,
)
from engine.i18n import Language
from engine.runtime.letters import letter_context
from engine.runtime.services import Services
from engine.storage.tables import Case
from tests.helpers import CITES_IMPORT, REPOSITORY, Tokens, example

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
LANGUAGES: tuple[Language, ...] = ("da", "en")
LETTERS = ("receipt", "information_request", "decision")
SKELETON_LETTERS = [f"skeletons/letters/{letter}.{language}.md.j2" for letter in LETTERS for language in ("da", "en")]
DATE_LINES = {"da": "Odense C, 4. december 2026", "en": "Odense C, 4 December 2026"}

# Input an applicant could type to turn their name into a link, emphasis or a script.
HOSTILE_NAME = "[Klik](http://evil.example) *stars* <script>alert(1)</script>"

# What a caseworker has decided by the time the decision letter is sent.
CASEWORKER_DATA: dict[str, Any] = {
    "cites_appendix": "II",
    "eu_annex": "B",
    "decision_outcome": "granted",
    "decision_text": "Vi giver tilladelse til indførslen.",
    "statement_of_reasons": "Eksporten skader ikke artens overlevelse.",
    "conditions": "Dyrene skal mærkes med mikrochip.",
    "missing_information": "- Kopi af eksporttilladelsen\n- Fakturaen for dyrene",
}


@pytest.fixture(scope="module")
def process() -> CompiledProcess:
    return load_definitions(REPOSITORY, [REPOSITORY / CITES_IMPORT]).compiled["cites-import"]


def make_case(**changes: Any) -> Case:
    data = {**example("01")["data"], **CASEWORKER_DATA, **changes}
    return Case(
        data=data,
        journal_number="2026-000017",
        title=f"Python regius, 60 stk – {data['applicant_name']}",
        received_at=NOW,
        processing_deadline_at=datetime(2027, 1, 29, 22, 59, 59, tzinfo=UTC),
        language="da",
    )


def make_services() -> Services:
    return Services(species=OfflineSpeciesPlus(), companies=FakeCompanyRegister(), digital_post=MemoryDigitalPost())


def render(process: CompiledProcess, letter_id: str, language: Language, **changes: Any) -> RenderedLetter:
    letter = process.definition.letters[letter_id]
    context = letter_context(make_case(**changes), process, make_services(), NOW, language)
    return process.renderer.render(letter.templates[language], letter.label.get(language), language, context)


def shipped_templates() -> dict[str, str]:
    """Read every letter template in the repository, by its path relative to the repository."""
    paths = [*REPOSITORY.glob("skeletons/**/*.md.j2"), *REPOSITORY.glob("processes/**/*.md.j2")]
    return {path.relative_to(REPOSITORY).as_posix(): path.read_text(encoding="utf-8") for path in paths}


def header_names() -> list[str]:
    return sorted(
        name for name in shipped_templates() if re.fullmatch(r"_\w*header\.\w\w\.md\.j2", name.split("/")[-1])
    )


def header_html(letter: RenderedLetter) -> str:
    """Return the HTML body up to the letter's title."""
    body = letter.html.split("<body>", 1)[1]
    return body.split("<h1>", 1)[0]


# The letter header -------------------------------------------------------------------------


@pytest.mark.parametrize("name", header_names())
def test_shipped_header_has_no_list(process: CompiledProcess, name: str) -> None:
    # Each skeleton's header names its recipient with fields of its own. Those render as a
    # sample line, and the names every letter sees come from a real CITES letter context.
    language: Language = "en" if name.endswith(".en.md.j2") else "da"
    templates = shipped_templates()
    context = letter_context(make_case(), process, make_services(), NOW, language)
    for variable in analyse_template(name, templates[name]).variables - LETTER_NAMES:
        context[variable] = "Eksempelvej 1"

    letter = LetterRenderer(templates, {}).render(name, "Brev", language, context)

    assert "<ol" not in letter.html
    assert f"<p>{DATE_LINES[language]}<br />" in letter.html
    assert f"\n{DATE_LINES[language]}\n" in letter.text


@pytest.mark.parametrize("name", SKELETON_LETTERS)
def test_skeleton_letter_header_has_no_list(process: CompiledProcess, name: str) -> None:
    # CITES replaces the skeleton's receipt and information request, so render the skeleton's
    # own files as well. Their fields are all fields of the CITES process.
    language: Language = "en" if name.endswith(".en.md.j2") else "da"
    context = letter_context(make_case(), process, make_services(), NOW, language)

    letter = LetterRenderer(shipped_templates(), {}).render(name, "Brev", language, context)

    assert "<ol" not in header_html(letter)
    assert f"<p>{DATE_LINES[language]}<br />" in header_html(letter)
    assert f"\n{DATE_LINES[language]}\n" in letter.text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("letter_id", LETTERS)
def test_letter_renders_in_both_languages(process: CompiledProcess, letter_id: str, language: Language) -> None:
    letter = render(process, letter_id, language)

    assert f'<html lang="{language}">' in letter.html
    assert "<ol" not in letter.html
    assert "<h1>" in letter.html
    assert DATE_LINES[language] in letter.text
    assert "Kragelund Terrarieimport ApS" in letter.text


# Tables ---------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_decision_html_has_specimens_table(process: CompiledProcess, language: Language) -> None:
    letter = render(process, "decision", language)

    assert "<table>" in letter.html
    assert "<td><em>Python regius</em></td>" in letter.html
    assert "<td>TG-CITES-2026-00418</td>" in letter.html
    assert "| |" not in letter.html


def test_decision_text_shows_table_as_columns(process: CompiledProcess) -> None:
    letter = render(process, "decision", "da")
    lines = letter.text.split("\n")
    start = lines.index("Afgørelsen omfatter:") + 2
    end = lines.index("", start)
    table = lines[start:end]

    assert lines[start - 1] == "", "the empty header row is left out"
    assert [line.split("  ")[0] for line in table] == [
        "Art",
        "CITES-liste / EU-bilag",
        "Enhedstype",
        "Antal eller mængde",
        "Formål",
        "Oprindelse",
        "Oprindelsesland / eksportland",
        "Eksportør",
        "Eksportlandets tilladelse",
    ]
    value_columns = {re.search(r"\S+  +(?=\S)", line).end() for line in table}  # type: ignore[union-attr]
    assert value_columns == {len("Oprindelsesland / eksportland") + 2}
    assert "Art                            Python regius" in table
    assert "Antal eller mængde             60 stk." in table


def test_exporter_pipe_stays_in_its_cell(process: CompiledProcess) -> None:
    letter = render(process, "decision", "da", exporter_name="Ferme | Oti")

    assert "<td>Ferme | Oti, Quartier Agoè-Nyivé, BP 4127, Lomé, Togo</td>" in letter.html
    assert "Ferme | Oti, Quartier" in letter.text


# Plain text -----------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("letter_id", LETTERS)
def test_plain_text_has_no_markdown_syntax(process: CompiledProcess, letter_id: str, language: Language) -> None:
    letter = render(process, letter_id, language)

    assert "**" not in letter.text
    assert "#" not in letter.text
    assert "|" not in letter.text
    assert "*Python regius*" not in letter.text
    assert [line for line in letter.text.split("\n") if line != line.rstrip()] == []
    assert "\n\n\n" not in letter.text
    assert letter.text.endswith("\n")
    assert not letter.text.endswith("\n\n")


def test_plain_text_keeps_blocks_and_lines(process: CompiledProcess) -> None:
    text = render(process, "decision", "da").text

    assert text.startswith("Miljøstyrelsen\nTolderlundsvej 5, 5000 Odense C\nmst@mst.dk\n\n")
    assert "\n\nAfgørelse om CITES-importtilladelse\n\nAfgørelse\n\nVi giver tilladelse til indførslen.\n\n" in text
    assert "\n\nBegrundelse\n\nEksporten skader ikke artens overlevelse.\n\n" in text
    assert "\n\nLovgrundlag\n\n- Rådets forordning (EF) nr. 338/97" in text
    assert "Fristen udløber den 4. januar 2027 kl. 23.59." in text
    assert text.endswith("Med venlig hilsen\n\nMiljøstyrelsen\n")


def test_markdown_source_is_kept(process: CompiledProcess) -> None:
    letter = render(process, "decision", "da")

    assert letter.markdown.startswith("**Miljøstyrelsen**  \n")
    assert "| Art | *Python regius* |" in letter.markdown
    assert "## Begrundelse" in letter.markdown


PLAIN_TEXT_CASES = [
    ("# Title\n\nText", "Title\n\nText\n"),
    ("one\ntwo  \nthree\\\nfour", "one\ntwo\nthree\nfour\n"),
    ("*em* **strong** `code`", "em strong code\n"),
    ("[Klagenævnet](https://naevneneshus.dk/)", "Klagenævnet (https://naevneneshus.dk/)\n"),
    ("<mst@mst.dk> <https://mst.dk>", "mst@mst.dk https://mst.dk\n"),
    ("- a\n- b\n  - c", "- a\n- b\n  - c\n"),
    ("- a\n\n- b\n  more", "- a\n\n- b\n  more\n"),
    ("4. four\n5. five", "4. four\n5. five\n"),
    ("1) one\n2) two", "1. one\n2. two\n"),
    ("| Art | Antal |\n|---|--:|\n| Python regius | 60 |\n| Boa | 2 |",
     "Art            Antal\nPython regius     60\nBoa                2\n"),
    ("| | |\n|---|---|\n| a | b |\n| long | c |", "a     b\nlong  c\n"),
    ("> quoted\n>\n> again", "> quoted\n>\n> again\n"),
    ("```\ncode  \n```", "code\n"),
    ("a\n\n---\n\nb", "a\n\n---\n\nb\n"),
    ("&amp; &lt;b&gt;", "& <b>\n"),
]  # fmt: skip


@pytest.mark.parametrize(("markdown", "expected"), PLAIN_TEXT_CASES)
def test_plain_text_rendering(markdown: str, expected: str) -> None:
    renderer = LetterRenderer({"letter.md.j2": markdown}, {})

    letter = renderer.render("letter.md.j2", "Brev", "da", {})

    assert letter.text == expected


# Escaping the applicant's input ------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("letter_id", LETTERS)
def test_applicant_markdown_shows_literally(process: CompiledProcess, letter_id: str, language: Language) -> None:
    letter = render(process, letter_id, language, applicant_name=HOSTILE_NAME)

    assert f"\n{HOSTILE_NAME}\n" in letter.text
    assert "<a" not in letter.html
    assert "<script" not in letter.html
    assert "<em>stars</em>" not in letter.html
    assert "[Klik](http://evil.example) *stars* &lt;script&gt;alert(1)&lt;/script&gt;<br />" in letter.html


def test_applicant_list_marker_stays_text(process: CompiledProcess) -> None:
    letter = render(
        process, "receipt", "da", applicant_address="1. sal, Vestergade 3", applicant_city="# &amp; <https://x.dk>"
    )

    assert "<ol" not in letter.html
    assert "<h1>#" not in letter.html
    assert "<p>Kragelund Terrarieimport ApS<br />\n1. sal, Vestergade 3<br />" in letter.html
    assert "8600 # &amp;amp; &lt;https://x.dk&gt;</p>" in letter.html
    assert "\n1. sal, Vestergade 3\n8600 # &amp; <https://x.dk>\n" in letter.text


def test_context_escapes_only_applicant_text(process: CompiledProcess) -> None:
    case = make_case(applicant_name="A*S", decision_text="Se **vilkår**", species="Python regius")
    context = letter_context(case, process, make_services(), NOW, "da")

    assert context["applicant_name"] == "A\\*S"
    assert context["decision_text"] == "Se **vilkår**"
    assert context["specimen_type"] == "LIV"
    assert context["quantity"] == 60
    assert context["recipient"]["name"] == "A\\*S"
    assert context["case"]["title"] == "Python regius, 60 stk – A\\*S"


@pytest.mark.parametrize("language", LANGUAGES)
def test_caseworker_bullet_list_stays_list(process: CompiledProcess, language: Language) -> None:
    letter = render(process, "information_request", language)

    assert "<ul>\n<li>Kopi af eksporttilladelsen</li>\n<li>Fakturaen for dyrene</li>\n</ul>" in letter.html
    assert "\n\n- Kopi af eksporttilladelsen\n- Fakturaen for dyrene\n\n" in letter.text


def test_caseworker_raw_html_is_escaped(process: CompiledProcess) -> None:
    letter = render(process, "decision", "da", decision_text="<b>Tilladelse</b> <script>alert(1)</script>")

    assert "<b>" not in letter.html
    assert "<script" not in letter.html
    assert "<p>&lt;b&gt;Tilladelse&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;</p>" in letter.html
    assert "\n<b>Tilladelse</b> <script>alert(1)</script>\n" in letter.text


ESCAPE_CASES = [
    ("Kragelund Terrarieimport ApS", "Kragelund Terrarieimport ApS"),
    ("Jens-Peter Hansen", "Jens-Peter Hansen"),
    ("[Klik](http://evil.example)", "\\[Klik\\](http://evil.example)"),
    ("*a* _b_ `c` <d> &e #f |g ~h \\i", "\\*a\\* \\_b\\_ \\`c\\` \\<d\\> \\&e \\#f \\|g \\~h \\\\i"),
    ("1. sal", "1\\. sal"),
    ("12) tolv", "12\\) tolv"),
    ("- x", "\\- x"),
    ("+45 86 84 21 37", "\\+45 86 84 21 37"),
    ("linje\r\n===", "linje\n\\==="),
    ("    kode  \n  - punkt", "kode\n\\- punkt"),
]


@pytest.mark.parametrize(("value", "expected"), ESCAPE_CASES)
def test_escape_markdown(value: str, expected: str) -> None:
    assert escape_markdown(value) == expected


@pytest.mark.parametrize(("value", "_escaped"), ESCAPE_CASES)
def test_escaped_value_renders_literally(value: str, _escaped: str) -> None:
    renderer = LetterRenderer({"letter.md.j2": "{{ value }}\n"}, {})

    letter = renderer.render("letter.md.j2", "Brev", "da", {"value": escape_markdown(value)})

    expected_lines = [line.strip() for line in value.replace("\r\n", "\n").split("\n")]
    body = letter.html.split("<body>", 1)[1].split("</body>", 1)[0]
    assert letter.text == "\n".join(expected_lines) + "\n"
    assert set(re.findall(r"<[^>]*>", body)) == {"<p>", "</p>"}


# Through the service -------------------------------------------------------------------------


def test_receipt_letter_escapes_submitted_name(client: TestClient, tokens: Tokens) -> None:
    application = example("01")
    application["data"]["applicant_name"] = HOSTILE_NAME
    response = client.post("/cases", json=application, headers=Tokens.header(tokens.applicant))
    assert response.status_code == 201, response.json()
    case = response.json()

    letters = client.get(f"/cases/{case['id']}/letters", headers=Tokens.header(tokens.applicant)).json()
    receipt = letters[0]

    assert f"\n{HOSTILE_NAME}\n" in receipt["text"]
    assert "\nOdense C, 4. december 2026\n" in receipt["text"]
    assert "**" not in receipt["text"]
    assert "<a" not in receipt["html"]
    assert "<script" not in receipt["html"]
    assert "<ol" not in receipt["html"]
