"""Letter templates: sandboxed Jinja2 producing Markdown, rendered to plain text and HTML.

Templates are named by their path relative to the definitions root, e.g.
`skeletons/letters/decision.da.md.j2`, so a process template can start with
`{% extends "skeletons/letters/decision.da.md.j2" %}`. A compiled process version carries
the source of every template it uses, so rendering never reads files.

Filters available to templates: `date` ("4. december 2026"), `kr` ("1.234,50 kr."),
`country` ("TG" → "Togo") and `label('field')` (the label of an enum value).
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

import pycountry
from jinja2 import DictLoader, StrictUndefined, Template, TemplateError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt

from engine.calendar import COPENHAGEN
from engine.definitions.plaintext import finish_plain_text, plain_blocks, render_plain_text
from engine.i18n import LANGUAGES, Language

_MONTHS = {
    "da": (
        "januar", "februar", "marts", "april", "maj", "juni",
        "juli", "august", "september", "oktober", "november", "december",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
}  # fmt: skip

# Names every letter template may use besides the case fields; the runtime fills them. `hearing`
# is None except in the letters that a hearing or party hearing step sends, and `report` except
# in the letters of a scheme's request case.
LETTER_NAMES: frozenset[str] = frozenset(
    {
        "case",
        "authority",
        "process",
        "letter_date",
        "fee",
        "appeal",
        "language",
        "recipient",
        "deadlines",
        "hearing",
        "report",
    }
)

_BLANK_LINES = re.compile(r"\n{3,}")
# With `html: False`, markdown-it escapes raw HTML in a template or a field value, so it shows as text.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable("table")

# Characters that start or end Markdown syntax wherever they are on a line: escapes, code
# spans and fences, emphasis, links, autolinks and raw HTML, entity references, ATX
# headings, table cells and block quotes.
_MARKDOWN_ANYWHERE = re.compile(r"([\\`*_\[\]<>&#|~])")
# Line starts that Markdown reads as a list item, a setext heading underline or a
# thematic break: "-", "+" or "=", or a number followed by "." or ")".
_MARKDOWN_LINE_START = re.compile(r"^(?:([-+=])|(\d+)([.)]))")
# Text of one line without any character that `_MARKDOWN_ANYWHERE` escapes.
_PLAIN_TEXT = re.compile(r"[^\\`*_\[\]<>&#|~\r\n]*")


def format_date(value: date | datetime | str | None, language: Language = "da") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    month = _MONTHS[language][value.month - 1]
    if language == "en":
        return f"{value.day} {month} {value.year}"
    return f"{value.day}. {month} {value.year}"


def format_moment(instant: datetime, language: Language = "da") -> str:
    """Format a moment as a date and time in Copenhagen: 28. december 2026 kl. 23.59 (English: ... at 23:59)."""
    local = instant.astimezone(COPENHAGEN)
    day = format_date(local.date(), language)
    if language == "en":
        return f"{day} at {local:%H:%M}"
    return f"{day} kl. {local:%H.%M}"


def format_amount(value: Decimal | int | float | None, language: Language = "da") -> str:
    """Format an amount in DKK the Danish way: 1.234,50 kr. (English: DKK 1,234.50)."""
    if value is None:
        return ""
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    whole = f"{amount:,.2f}"
    if language == "en":
        return f"DKK {whole}"
    return whole.replace(",", "_").replace(".", ",").replace("_", ".") + " kr."


@lru_cache(maxsize=1)
def _danish_country_names() -> gettext.NullTranslations:
    return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["da"], fallback=True)


def format_country(code: str | None, language: Language = "da") -> str:
    """Name a country from its ISO 3166-1 alpha-2 code in the letter's language (pycountry's names)."""
    if not code:
        return ""
    country = pycountry.countries.get(alpha_2=str(code).upper())
    if country is None:
        return str(code)
    name: str = getattr(country, "common_name", None) or country.name
    return _danish_country_names().gettext(country.name) if language == "da" else name


def escape_markdown(value: str) -> str:
    """Backslash-escape text so that Markdown shows it literally, e.g. "[Klik](x)" as written.

    Leading and trailing blanks of each line are removed, because Markdown would read four
    leading spaces as a code block and two trailing ones as a line break. Line breaks stay,
    and a blank line inside the value still separates two paragraphs.
    """
    if _PLAIN_TEXT.fullmatch(value) and value == value.strip() and not _MARKDOWN_LINE_START.match(value):
        # One line that needs no escape, which most names and addresses are.
        return value
    lines = []
    for line in value.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        escaped = _MARKDOWN_ANYWHERE.sub(r"\\\1", line.strip())
        lines.append(_MARKDOWN_LINE_START.sub(_escape_line_start, escaped))
    return "\n".join(lines)


def _escape_line_start(match: re.Match[str]) -> str:
    marker, number, delimiter = match.groups()
    if marker:
        return "\\" + marker
    return f"{number}\\{delimiter}"


class TemplateProblem(Exception):
    def __init__(self, template: str, detail: str, line: int | None = None) -> None:
        super().__init__(f"{template}: {detail}")
        self.template = template
        self.detail = detail
        self.line = line


@dataclass(frozen=True)
class TemplateInfo:
    """What static analysis finds in one template source."""

    name: str
    extends: str | None
    referenced: frozenset[str]
    blocks: frozenset[str]
    variables: frozenset[str]


def letter_environment(loader: DictLoader | None = None) -> SandboxedEnvironment:
    """Build the sandboxed environment letters render in: lexer settings and filters.

    Validation compiles templates in an environment from this function too, so a template
    that passes validation compiles when a letter is rendered.
    """
    environment = SandboxedEnvironment(
        loader=loader,
        autoescape=False,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        # An optional field that is not filled in renders as nothing, not as "None".
        finalize=lambda value: "" if value is None else value,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["date"] = format_date
    environment.filters["kr"] = format_amount
    environment.filters["country"] = format_country
    environment.filters["label"] = lambda value, field: value
    return environment


_ANALYSIS = letter_environment()
_TITLES = SandboxedEnvironment(autoescape=False, finalize=lambda value: "" if value is None else value)


def title_template(source: str) -> Template:
    """Compile a case title template; unknown or empty fields render as empty text."""
    return _TITLES.from_string(source)


def analyse_template(name: str, source: str) -> TemplateInfo:
    """Parse a template and list what it extends, includes, defines and uses."""
    try:
        tree = _ANALYSIS.parse(source, name=name)
    except TemplateError as error:
        raise TemplateProblem(name, error.message or "syntax error", getattr(error, "lineno", None)) from None
    referenced = frozenset(ref for ref in meta.find_referenced_templates(tree) if ref is not None)
    extends = next(
        (node.template.value for node in tree.find_all(nodes.Extends) if isinstance(node.template, nodes.Const)), None
    )
    blocks = frozenset(node.name for node in tree.find_all(nodes.Block))
    variables = frozenset(meta.find_undeclared_variables(tree)) - set(_ANALYSIS.globals)
    return TemplateInfo(name=name, extends=extends, referenced=referenced, blocks=blocks, variables=variables)


@dataclass(frozen=True)
class TemplateNames:
    """The names a template may read and the templates it extends, includes or imports."""

    # Every variable name the template loads, also those it assigns itself first, so a
    # superset of `TemplateInfo.variables`.
    names: frozenset[str]
    referenced: frozenset[str]


@lru_cache(maxsize=256)
def template_names(name: str, source: str) -> TemplateNames:
    """Parse a template and list the names it reads and the templates it uses; cheaper than `analyse_template`.

    The result depends on the source alone, so it is cached by name and source.
    """
    try:
        tree = _ANALYSIS.parse(source, name=name)
    except TemplateError as error:
        raise TemplateProblem(name, error.message or "syntax error", getattr(error, "lineno", None)) from None
    names = frozenset(node.name for node in tree.find_all(nodes.Name) if node.ctx == "load")
    referenced = frozenset(ref for ref in meta.find_referenced_templates(tree) if ref is not None)
    return TemplateNames(names=names, referenced=referenced)


@dataclass(frozen=True)
class RenderedLetter:
    """A rendered letter. `markdown` is the template's output, and `text` and `html` are rendered from it."""

    subject: str
    text: str
    html: str
    markdown: str


# The cut between two parts of a letter that Markdown reads independently: a blank line
# followed by a line without indentation or list marker, which starts a new top-level block.
_PART_BREAK = re.compile(r"\n\n(?=[^\s\d*+-]|\d+[^\d.)]|[*+-]\S|\d+[.)]\S)")
# Fenced code and link reference definitions tie distant lines together, so such letters are not cut.
_TIED_LINES = re.compile(r"^ {0,3}(?:```|~~~|\[[^\]]*\]:)", re.MULTILINE)


# A backslash escape: a backslash before ASCII punctuation, which then stands for itself.
_ESCAPE = r"\\[!-/:-@\[-`{-~]"
# A character that plain paragraph text may hold as it is: no tab, no control character and
# nothing that starts inline Markdown (emphasis, code, links, autolinks, entities, escapes).
_PLAIN_CHARACTER = r"[^\x00-\x1f\x7f*_`\[\]<>&\\]"
# A line of a plain paragraph. It starts with a letter, an opening quote or parenthesis, an
# escape, or a number that is no list marker, so no line starts a block or ends a paragraph.
_PLAIN_LINE = re.compile(rf"(?:[^\W\d_]|[\"'(«]|{_ESCAPE}|\d(?!\d*[.)](?:\s|$)))(?:{_PLAIN_CHARACTER}|{_ESCAPE})*")
_UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def _plain_paragraph(part: str) -> tuple[str, str] | None:
    """Convert one paragraph of plain text as markdown-it does, or return None when `part` is not that.

    Lines ending in two or more spaces end in a hard line break, other line breaks are soft,
    escapes stand for their character, and the HTML escapes &, <, > and ".
    """
    lines = part.split("\n")
    if not all(_PLAIN_LINE.fullmatch(line) for line in lines):
        return None
    html: list[str] = []
    text: list[str] = []
    for index, line in enumerate(lines):
        content = _UNESCAPE.sub(r"\1", line.rstrip(" "))
        html.append(_escape(content))
        text.append(content)
        if index < len(lines) - 1:
            html.append("<br />\n" if line.endswith("  ") else "\n")
            text.append("\n")
    return f"<p>{''.join(html)}</p>\n", "".join(text)


class BlockCache:
    """Converted parts of letters, for rendering many letters that share most of their text.

    A bulk run renders one letter per member from one template: the letters differ in a
    few paragraphs, such as the address and the journal number, and share the rest. The
    cache cuts each letter's Markdown where a blank line is followed by a line that starts
    new top-level blocks (no indentation, no list marker), converts each part to HTML and
    plain text once, and joins the parts. A letter with fenced code or link reference
    definitions is not cut, and `convert` returns None for it.

    When the cache contains `max_entries` parts, it starts over, so memory stays bounded.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._parts: dict[str, tuple[str, str]] = {}

    def convert(self, markdown: str) -> tuple[str, str] | None:
        """Return the HTML body and the plain text of `markdown`, or None when it cannot be cut safely."""
        if _TIED_LINES.search(markdown):
            return None
        bodies: list[str] = []
        texts: list[str] = []
        for part in _PART_BREAK.split(markdown):
            converted = self._parts.get(part)
            if converted is None:
                converted = _plain_paragraph(part) or self._parse(part)
                if len(self._parts) >= self.max_entries:
                    self._parts.clear()
                self._parts[part] = converted
            bodies.append(converted[0])
            if converted[1]:
                texts.append(converted[1])
        return "".join(bodies), finish_plain_text("\n\n".join(texts))

    @staticmethod
    def _parse(part: str) -> tuple[str, str]:
        tokens = _MARKDOWN.parse(part)
        return _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {}), plain_blocks(tokens)


class LetterRenderer:
    """Renders the letters of one compiled process version.

    There is one environment per language, because the `date`, `kr` and `label` filters
    format for the letter's language; sharing one environment across threads would
    make a Danish and an English letter rendered at the same time mix their formats.
    """

    def __init__(self, templates: Mapping[str, str], labels: Mapping[str, Mapping[str, Mapping[str, str]]]):
        self._labels = labels
        self._environments: dict[Language, SandboxedEnvironment] = {}
        loader = DictLoader(dict(templates))
        for language in LANGUAGES:
            environment = letter_environment(loader)
            environment.filters["date"] = partial(format_date, language=language)
            environment.filters["kr"] = partial(format_amount, language=language)
            environment.filters["country"] = partial(format_country, language=language)
            environment.filters["label"] = partial(self._label, language=language)
            self._environments[language] = environment

    def _template(self, name: str, language: Language) -> Template:
        try:
            # Jinja2 caches compiled templates in the environment.
            return self._environments[language].get_template(name)
        except TemplateError as error:
            raise TemplateProblem(name, error.message or type(error).__name__, getattr(error, "lineno", None)) from None

    def check(self, name: str) -> None:
        """Compile a template and what it extends now, raising `TemplateProblem` if that fails."""
        self._template(name, "da")

    def render(
        self,
        name: str,
        subject: str,
        language: Language,
        context: Mapping[str, Any],
        blocks: BlockCache | None = None,
    ) -> RenderedLetter:
        """Render a letter; with `blocks`, Markdown blocks that earlier letters had too are converted once."""
        template = self._template(name, language)
        try:
            output = template.render(context)
        except TemplateError as error:
            raise TemplateProblem(name, error.message or type(error).__name__, getattr(error, "lineno", None)) from None
        if "\n\n\n" in output:
            output = _BLANK_LINES.sub("\n\n", output)
        markdown = output.strip() + "\n"
        converted = blocks.convert(markdown) if blocks is not None else None
        if converted is None:
            tokens = _MARKDOWN.parse(markdown)
            body = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
            text = render_plain_text(tokens)
        else:
            body, text = converted
        html = (
            f'<!DOCTYPE html>\n<html lang="{language}">\n<head><meta charset="utf-8">'
            f"<title>{_escape(subject)}</title></head>\n<body>\n{body}</body>\n</html>\n"
        )
        return RenderedLetter(subject=subject, text=text, html=html, markdown=markdown)

    def _label(self, value: Any, field: str, language: Language) -> str:
        if value is None:
            return ""
        return self._labels.get(field, {}).get(str(value), {}).get(language, str(value))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
