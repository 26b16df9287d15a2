"""Definition problems: every error and warning that loading and validation can report.

Each problem has a stable code, listed in `CATALOG` and documented in
`docs/definition-errors.md`. A code never changes meaning; retired codes are not reused.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engine.i18n import Language, Text

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a definition file; line and column are 1-based, as editors count them."""

    file: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    message: Text
    hint: Text | None = None
    severity: Severity = "error"


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    name: str
    location: Location
    text: Text
    hint: Text | None
    severity: Severity = "error"

    def format(self, language: Language) -> str:
        """Render as `file:line:col: CODE message (hint)`, the form editors and CI parse."""
        message = self.text.get(language)
        if self.hint is not None:
            message = f"{message} {self.hint.get(language)}"
        prefix = "" if self.severity == "error" else ("advarsel: " if language == "da" else "warning: ")
        return f"{self.location}: {self.code} {prefix}{message}"

    def as_dict(self, language: Language) -> dict[str, Any]:
        return {
            "file": self.location.file,
            "line": self.location.line,
            "column": self.location.column,
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "message": self.text.get(language),
            "hint": self.hint.get(language) if self.hint else None,
        }


def _t(da: str, en: str) -> Text:
    return Text(da=da, en=en)


CATALOG: dict[str, Entry] = {
    # Reading files: bytes and YAML.
    "SF100": Entry(
        "yaml-syntax",
        _t("YAML-syntaksfejl: {detail}.", "YAML syntax error: {detail}."),
        _t(
            "Tjek indrykning, kolon og anførselstegn på linjen og linjen over.",
            "Check indentation, colons and quotes on this line and the line above.",
        ),
    ),
    "SF101": Entry(
        "duplicate-key",
        _t(
            "Nøglen '{key}' står to gange; første gang på linje {first_line}.",
            "The key '{key}' appears twice; first on line {first_line}.",
        ),
        _t("Slet eller omdøb den ene.", "Delete or rename one of them."),
    ),
    "SF102": Entry(
        "not-utf8",
        _t(
            "Filen er ikke gyldig UTF-8 (byte {offset}).",
            "The file is not valid UTF-8 (byte {offset}).",
        ),
        _t("Gem filen som UTF-8 i editoren.", "Save the file as UTF-8 in your editor."),
    ),
    "SF103": Entry(
        "empty-file",
        _t("Filen er tom.", "The file is empty."),
        _t(
            "Skriv en definition, eller slet filen.",
            "Write a definition, or delete the file.",
        ),
    ),
    "SF104": Entry(
        "file-too-large",
        _t(
            "Filen fylder {size} byte; grænsen er {limit} byte.",
            "The file has {size} bytes; the limit is {limit} bytes.",
        ),
        _t(
            "Del definitionen op, eller flyt data ud af YAML-filen.",
            "Split the definition, or move data out of the YAML file.",
        ),
    ),
    "SF105": Entry(
        "too-many-nodes",
        _t(
            "Filen udfolder sig til mere end {limit} YAML-noder (ankre og aliaser).",
            "The file expands to more than {limit} YAML nodes (anchors and aliases).",
        ),
        _t(
            "Brug færre aliaser (*navn); skriv værdierne ud.",
            "Use fewer aliases (*name); write the values out.",
        ),
    ),
    "SF106": Entry(
        "unsupported-tag",
        _t("YAML-mærket '{tag}' understøttes ikke.", "The YAML tag '{tag}' is not supported."),
        _t("Fjern mærket (!...) og skriv en almindelig værdi.", "Remove the tag (!...) and write a plain value."),
    ),
    "SF107": Entry(
        "number-with-leading-zero",
        _t(
            "Tallet {value} har et foranstillet nul, som YAML fjerner.",
            "The number {value} has a leading zero, which YAML drops.",
        ),
        _t(
            "Skriv tallet uden foranstillede nuller, hvis det er et tal; sæt anførselstegn om koder og postnumre: "
            "'{value}'.",
            "Write the number without leading zeros if it is a number; put quotes around codes and postcodes: "
            "'{value}'.",
        ),
    ),
    "SF108": Entry(
        "not-a-mapping",
        _t("Filen skal indeholde en YAML-mapping øverst.", "The file must contain a YAML mapping at the top."),
        _t(
            "Start filen med 'process: <id>' eller 'skeleton: <id>'.",
            "Start the file with 'process: <id>' or 'skeleton: <id>'.",
        ),
    ),
    "SF109": Entry(
        "byte-order-mark",
        _t("Filen starter med et byte order mark (BOM).", "The file starts with a byte order mark (BOM)."),
        _t("Gem filen som UTF-8 uden BOM.", "Save the file as UTF-8 without a BOM."),
    ),
    "SF110": Entry(
        "tab-character",
        _t("Tabulator i indrykningen.", "Tab character in the indentation."),
        _t("YAML indrykkes med mellemrum; erstat tabulatoren.", "YAML is indented with spaces; replace the tab."),
    ),
    "SF111": Entry(
        "unknown-document-kind",
        _t("Filen er ikke {expected}.", "The file is not {expected}."),
        _t(
            "Første nøgle skal være 'process:' (filer under processes/) eller 'skeleton:' (under skeletons/).",
            "The first key must be 'process:' (files under processes/) or 'skeleton:' (under skeletons/).",
        ),
    ),
    "SF112": Entry(
        "ambiguous-word",
        _t(
            "Ordet {value} er tekst her, men YAML 1.1-værktøjer læser det som ja/nej.",
            "The word {value} is text here, but YAML 1.1 tools read it as yes/no.",
        ),
        _t(
            "Sæt anførselstegn om teksten: '{value}'. Mener du ja/nej, så skriv true eller false.",
            "Put quotes around the text: '{value}'. If you mean yes/no, write true or false.",
        ),
    ),
    # Shape of the document: the pydantic models.
    "SF200": Entry(
        "unknown-key",
        _t("Ukendt nøgle '{key}'.", "Unknown key '{key}'."),
        _t("Tilladte nøgler her: {allowed}.", "Allowed keys here: {allowed}."),
    ),
    "SF201": Entry(
        "missing-key",
        _t("Nøglen '{key}' mangler.", "The key '{key}' is missing."),
        _t("Tilføj '{key}:' her.", "Add '{key}:' here."),
    ),
    "SF202": Entry(
        "invalid-value",
        _t("Ugyldig værdi for '{key}': {detail}.", "Invalid value for '{key}': {detail}."),
        None,
    ),
    "SF203": Entry(
        "invalid-identifier",
        _t("'{value}' er ikke et gyldigt id.", "'{value}' is not a valid id."),
        _t(
            "Brug små bogstaver a-z, cifre og {separator}, og start med et bogstav.",
            "Use lower-case letters a-z, digits and {separator}, starting with a letter.",
        ),
    ),
    "SF204": Entry(
        "expected-text",
        _t(
            "'{key}' skal være tekst, men YAML læser {value} som {kind}.",
            "'{key}' must be text, but YAML reads {value} as {kind}.",
        ),
        _t("Sæt anførselstegn om værdien: '{value}'.", "Put quotes around the value: '{value}'."),
    ),
    "SF205": Entry(
        "expected-boolean",
        _t("'{key}' skal være true eller false, ikke {value}.", "'{key}' must be true or false, not {value}."),
        _t(
            "Skriv true eller false uden anførselstegn.",
            "Write true or false without quotes.",
        ),
    ),
    # References and extension.
    "SF300": Entry(
        "unknown-skeleton",
        _t(
            "'{name}' er hverken et skelet eller en proces.",
            "'{name}' is neither a skeleton nor a process.",
        ),
        _t(
            "Kendte skeletter: {known}. En proces kan også udvide en anden proces ved dens id.",
            "Known skeletons: {known}. A process may also extend another process by its id.",
        ),
    ),
    "SF301": Entry(
        "duplicate-id",
        _t(
            "{kind} '{name}' er defineret to gange; første gang i {first}.",
            "{kind} '{name}' is defined twice; first in {first}.",
        ),
        _t("Giv den ene et andet id.", "Give one of them another id."),
    ),
    "SF302": Entry(
        "unknown-step",
        _t("Trinnet '{name}' findes ikke.", "The step '{name}' does not exist."),
        _t("Kendte trin: {known}.", "Known steps: {known}."),
    ),
    "SF303": Entry(
        "locked-step",
        _t(
            "Trinnet '{name}' er låst af skelettet '{skeleton}' og kan ikke {operation}.",
            "The step '{name}' is locked by the skeleton '{skeleton}' and cannot be {operation}.",
        ),
        _t(
            "Låste trin er retssikkerhedsgarantier; indsæt et ekstra trin før eller efter i stedet.",
            "Locked steps are legal safeguards; insert an extra step before or after instead.",
        ),
    ),
    "SF304": Entry(
        "unknown-field-type",
        _t("Felttypen '{name}' findes ikke.", "The field type '{name}' does not exist."),
        _t("Kendte typer: {known}.", "Known types: {known}."),
    ),
    "SF305": Entry(
        "unknown-phase",
        _t("Fasen '{name}' findes ikke.", "The phase '{name}' does not exist."),
        _t("Kendte faser: {known}.", "Known phases: {known}."),
    ),
    "SF306": Entry(
        "unknown-field",
        _t("Feltet '{name}' findes ikke.", "The field '{name}' does not exist."),
        _t("Kendte felter: {known}.", "Known fields: {known}."),
    ),
    "SF307": Entry(
        "invalid-expression",
        _t(
            "Udtrykket '{expression}' er ugyldigt: {detail}.",
            "The expression '{expression}' is not valid: {detail}.",
        ),
        _t(
            "Skriv et Jinja2-udtryk over felterne, fx: quantity > 10 and purpose == 'T'.",
            "Write a Jinja2 expression over the fields, e.g. quantity > 10 and purpose == 'T'.",
        ),
    ),
    "SF308": Entry(
        "unknown-action",
        _t("Handlingen '{name}' findes ikke.", "The action '{name}' does not exist."),
        _t("Kendte handlinger: {known}.", "Known actions: {known}."),
    ),
    "SF309": Entry(
        "invalid-action-params",
        _t(
            "Ugyldige parametre til handlingen '{action}': {detail}.",
            "Invalid parameters for the action '{action}': {detail}.",
        ),
        None,
    ),
    "SF310": Entry(
        "unknown-letter",
        _t("Brevet '{name}' findes ikke.", "The letter '{name}' does not exist."),
        _t(
            "Kendte breve: {known}. Et nyt brev erklæres under 'letters' med både 'label' og 'template'.",
            "Known letters: {known}. A new letter is declared under 'letters' with both 'label' and 'template'.",
        ),
    ),
    "SF311": Entry(
        "invalid-template",
        _t(
            "Brevskabelonen '{template}' (brevet '{letter}') kan ikke bruges: {detail}.",
            "The letter template '{template}' (letter '{letter}') cannot be used: {detail}.",
        ),
        _t("{fix}", "{fix}"),
    ),
    "SF312": Entry(
        "unknown-template-variable",
        _t(
            "{template} bruger den ukendte variabel '{name}'.",
            "{template} uses the unknown variable '{name}'.",
        ),
        _t("Kendte variabler: {known}.", "Known variables: {known}."),
    ),
    "SF313": Entry(
        "locked-letter",
        _t(
            "Brevet '{name}' er låst af skelettet: {detail}.",
            "The letter '{name}' is locked by the skeleton: {detail}.",
        ),
        _t(
            'Start skabelonen med {{% extends "{base}" %}} og udfyld kun de blokke, der ikke er låst.',
            'Start the template with {{% extends "{base}" %}} and fill only the blocks that are not locked.',
        ),
    ),
    "SF314": Entry(
        "unknown-role",
        _t("Rollen '{name}' findes ikke.", "The role '{name}' does not exist."),
        _t("Kendte roller: {known}.", "Known roles: {known}."),
    ),
    "SF315": Entry(
        "invalid-step",
        _t("Trinnet '{name}' ({kind}): {detail}.", "The step '{name}' ({kind}): {detail}."),
        None,
    ),
    "SF316": Entry(
        "invalid-field-option",
        _t(
            "Feltet '{name}' af typen '{type}': {detail}.",
            "The field '{name}' of type '{type}': {detail}.",
        ),
        None,
    ),
    "SF317": Entry(
        "invalid-deadline",
        _t("Ugyldig frist: {detail}.", "Invalid deadline: {detail}."),
        None,
    ),
    "SF318": Entry(
        "invalid-step-change",
        _t(
            "En trinændring skal have præcis én af insert_after, insert_before, replace og remove.",
            "A step change must have exactly one of insert_after, insert_before, replace and remove.",
        ),
        _t(
            "Fx: '- insert_after: screening' efterfulgt af 'step: {{...}}'.",
            "For example: '- insert_after: screening' followed by 'step: {{...}}'.",
        ),
    ),
    "SF319": Entry(
        "invalid-approval",
        _t(
            "Godkendelsestrinnet '{name}' godkender '{target}': {detail}.",
            "The approval step '{name}' approves '{target}': {detail}.",
        ),
        None,
    ),
    "SF320": Entry(
        "invalid-phase",
        _t("Fasen '{name}': {detail}.", "The phase '{name}': {detail}."),
        None,
    ),
    "SF321": Entry(
        "invalid-field-override",
        _t(
            "Feltet '{name}' kan ikke ændres sådan: {detail}.",
            "The field '{name}' cannot be changed like this: {detail}.",
        ),
        None,
    ),
    "SF322": Entry(
        "process-file-location",
        _t(
            "Processen '{name}' udvider '{skeleton}', men ligger i mappen '{folder}'.",
            "The process '{name}' extends '{skeleton}' but lives in the folder '{folder}'.",
        ),
        _t("Flyt filen til processes/{skeleton}/.", "Move the file to processes/{skeleton}/."),
        "warning",
    ),
    # The phase graph.
    "SF323": Entry(
        "unreachable-phase",
        _t(
            "Fasen '{name}' kan ikke nås fra den første fase '{first}'.",
            "The phase '{name}' cannot be reached from the first phase '{first}'.",
        ),
        _t(
            "Tilføj en overgang til fasen fra en anden fase, eller fjern den.",
            "Add a transition to the phase from another phase, or remove it.",
        ),
    ),
    "SF324": Entry(
        "no-way-to-final-phase",
        _t(
            "Fra fasen '{name}' fører ingen vej til en slutfase, så en sag her kan aldrig afsluttes.",
            "No path leads from the phase '{name}' to a final phase, so a case there can never be closed.",
        ),
        _t(
            "Tilføj en overgang mod en fase med 'final: true'.",
            "Add a transition towards a phase with 'final: true'.",
        ),
    ),
    "SF325": Entry(
        "unused-transition",
        _t(
            "Overgangen fra '{name}' til '{target}' bruges aldrig, fordi en overgang uden betingelse står før den.",
            "The transition from '{name}' to '{target}' is never taken, because a transition without a condition "
            "comes before it.",
        ),
        _t(
            "Overgange prøves i rækkefølge; flyt den ubetingede overgang sidst.",
            "Transitions are tried in order; move the unconditional transition last.",
        ),
        "warning",
    ),
    "SF326": Entry(
        "no-default-transition",
        _t(
            "Alle overgange fra fasen '{name}' har en betingelse; holder ingen af dem, går sagen i stå "
            "med en konflikt.",
            "Every transition from the phase '{name}' has a condition; when none holds, the case stops with a "
            "conflict.",
        ),
        _t(
            "Tilføj en sidste overgang uden 'when', eller sørg for, at betingelserne dækker alle tilfælde.",
            "Add a last transition without 'when', or make sure the conditions cover every case.",
        ),
        "warning",
    ),
    "SF327": Entry(
        "automatic-loop",
        _t(
            "Faserne {cycle} danner en løkke uden manuelle trin og uden betingelser; en sag ville skifte fase "
            "i det uendelige.",
            "The phases {cycle} form a loop without manual steps or conditions; a case would change phase forever.",
        ),
        _t(
            "Tilføj et manuelt trin i en af faserne, eller en betingelse på en af overgangene.",
            "Add a manual step to one of the phases, or a condition to one of the transitions.",
        ),
    ),
    "SF328": Entry(
        "duplicate-condition",
        _t(
            "Fasen '{name}' har to overgange med betingelsen '{expression}'; kun den første bruges.",
            "The phase '{name}' has two transitions with the condition '{expression}'; only the first is used.",
        ),
        _t("Ret eller fjern den anden overgang.", "Correct or remove the second transition."),
        "warning",
    ),
    "SF329": Entry(
        "locked-step-weakened",
        _t(
            "Trinnet '{name}' er låst af skelettet '{skeleton}', og erstatningen svækker det: {detail}.",
            "The step '{name}' is locked by the skeleton '{skeleton}', and the replacement weakens it: {detail}.",
        ),
        _t(
            "Et låst trin må kun erstattes af et trin med samme id, type, rolle og mål, som stadig er påkrævet, "
            "er uden ny betingelse, har mindst lige så mange øjne og ingen kortere frist.",
            "A locked step may only be replaced by a step with the same id, kind, role and target that is still "
            "required, has no new condition, has at least as many eyes and no shorter deadline.",
        ),
    ),
    "SF330": Entry(
        "extends-cycle",
        _t(
            "Processen '{name}' udvider i sidste ende sig selv: {cycle}.",
            "The process '{name}' ends up extending itself: {cycle}.",
        ),
        _t(
            "Ret 'extends' i en af processerne, så kæden ender i et skelet.",
            "Change 'extends' in one of the processes, so that the chain ends in a skeleton.",
        ),
    ),
    "SF331": Entry(
        "step-still-used",
        _t(
            "Trinnet '{name}' fjernes, men bruges stadig af {users}.",
            "The step '{name}' is removed but is still used by {users}.",
        ),
        _t(
            "Erstat trinnet med 'replace:' i stedet for at fjerne det, eller ret først det, der bruger det.",
            "Replace the step with 'replace:' instead of removing it, or first change what uses it.",
        ),
    ),
    "SF332": Entry(
        "impossible-comparison",
        _t(
            "I betingelsen '{expression}' kan {subject} aldrig være lig med {value}: {detail}.",
            "In the condition '{expression}', {subject} can never equal {value}: {detail}.",
        ),
        _t("{fix}", "{fix}"),
        "warning",
    ),
    "SF333": Entry(
        "letter-never-sent",
        _t(
            "Brevet '{name}' er erklæret, men intet trin sender det.",
            "The letter '{name}' is declared, but no step sends it.",
        ),
        _t(
            "Tilføj et trin med 'kind: letter' og 'letter: {name}', eller fjern brevet.",
            "Add a step with 'kind: letter' and 'letter: {name}', or remove the letter.",
        ),
        "warning",
    ),
    # Scheme cases: the `scheme:` section and the processes it names.
    "SF340": Entry(
        "unknown-scheme-process",
        _t(
            "Processen '{name}', som 'scheme.{key}' nævner, findes ikke.",
            "The process '{name}' that 'scheme.{key}' names does not exist.",
        ),
        _t("Kendte processer: {known}.", "Known processes: {known}."),
    ),
    "SF341": Entry(
        "unknown-scheme-field",
        _t(
            "Feltet '{name}' findes ikke i processen '{process}' ({side}).",
            "The field '{name}' does not exist in the process '{process}' ({side}).",
        ),
        _t("Kendte felter: {known}.", "Known fields: {known}."),
    ),
    "SF342": Entry(
        "scheme-field-type",
        _t("Ordningens felt '{name}': {detail}.", "The scheme's field '{name}': {detail}."),
        _t("{fix}", "{fix}"),
    ),
    "SF343": Entry(
        "invalid-scheme",
        _t("Ordningen kan ikke bruges: {detail}.", "The scheme cannot be used: {detail}."),
        _t("{fix}", "{fix}"),
    ),
}


def _in_language(params: dict[str, Any], language: Language) -> dict[str, Any]:
    return {name: value.get(language) if isinstance(value, Text) else value for name, value in params.items()}


def _fill(template: Text, params: dict[str, Any]) -> Text:
    return Text(
        da=template.da.format(**_in_language(params, "da")),
        en=template.en.format(**_in_language(params, "en")),
    )


def make_problem(code: str, location: Location, *, hint: Text | None = None, **params: Any) -> Problem:
    """Build the catalog's problem `code`; a `Text` parameter fills each language with its own words.

    `hint` replaces the catalog's hint where the caller knows a more precise fix.
    """
    entry = CATALOG[code]
    if hint is None and entry.hint is not None:
        hint = _fill(entry.hint, params)
    return Problem(
        code=code,
        name=entry.name,
        location=location,
        text=_fill(entry.message, params),
        hint=hint,
        severity=entry.severity,
    )


def closest_name(wrong: str, names: Iterable[str]) -> str | None:
    """Return the name in `names` closest to `wrong`, ignoring case, or None when none is close."""
    by_lower: dict[str, str] = {}
    for name in names:
        by_lower.setdefault(name.lower(), name)
    close = difflib.get_close_matches(wrong.lower(), list(by_lower), n=1)
    return by_lower[close[0]] if close else None


def known_names(names: Iterable[str], wrong: str | None = None, *, sort: bool = True) -> Text:
    """List `names` for a hint, followed by a did-you-mean for `wrong` when one of them is close to it."""
    ordered = sorted(names) if sort else list(names)
    close = closest_name(wrong, ordered) if wrong is not None else None
    return listed_names(ordered, None if close == wrong else close)


def listed_names(names: Sequence[str], suggestion: str | None = None) -> Text:
    """List `names` for a hint, followed by "did you mean" and `suggestion` when one is given."""
    listed = ", ".join(names)
    if not listed:
        return Text("(ingen)", "(none)")
    if suggestion is None:
        return Text(listed, listed)
    return Text(f"{listed} (mente du '{suggestion}'?)", f"{listed} (did you mean '{suggestion}'?)")


# pydantic's error messages are English only; these are the error types the definition models raise.

_WHOLE_NUMBER = _t("værdien skal være et helt tal", "the value must be a whole number")
_BOOLEAN = _t("værdien skal være true eller false", "the value must be true or false")
_NUMBER = _t("værdien skal være et tal", "the value must be a number")
_MAPPING = _t("værdien skal være en mapping (nøgle: værdi)", "the value must be a mapping (key: value)")

_FIXED_DETAILS: dict[str, Text] = {
    "missing": _t("værdien mangler", "the value is missing"),
    "extra_forbidden": _t("nøglen er ukendt", "the key is not known"),
    "string_type": _t("værdien skal være tekst", "the value must be text"),
    "int_parsing": _WHOLE_NUMBER,
    "int_type": _WHOLE_NUMBER,
    "int_from_float": _WHOLE_NUMBER,
    "bool_type": _BOOLEAN,
    "bool_parsing": _BOOLEAN,
    "decimal_parsing": _NUMBER,
    "decimal_type": _NUMBER,
    "float_parsing": _NUMBER,
    "float_type": _NUMBER,
    "dict_type": _MAPPING,
    "model_type": _MAPPING,
    "model_attributes_type": _MAPPING,
    "list_type": _t("værdien skal være en liste", "the value must be a list"),
}


def _count(number: Any, singular: str, plural: str) -> str:
    return f"{number} {singular if int(number) == 1 else plural}"


def _choices(context: dict[str, Any]) -> Text:
    # pydantic lists the choices as "'a', 'b' or 'c'"; Danish joins the last one with "eller".
    expected = str(context.get("expected", ""))
    head, separator, last = expected.rpartition(" or ")
    danish = f"{head} eller {last}" if separator else expected
    return _t(f"værdien skal være {danish}", f"the value must be {expected}")


def _collection(context: dict[str, Any]) -> tuple[str, str]:
    if context.get("field_type") == "Dictionary":
        return "mappingen", "the mapping"
    return "listen", "the list"


def _too_short(context: dict[str, Any]) -> Text:
    da, en = _collection(context)
    number = context["min_length"]
    return _t(
        f"{da} skal have mindst {_count(number, 'element', 'elementer')}",
        f"{en} must have at least {_count(number, 'item', 'items')}",
    )


def _too_long(context: dict[str, Any]) -> Text:
    da, en = _collection(context)
    number = context["max_length"]
    return _t(
        f"{da} må højst have {_count(number, 'element', 'elementer')}",
        f"{en} may have at most {_count(number, 'item', 'items')}",
    )


def _union_tag(context: dict[str, Any]) -> Text:
    tag, discriminator, expected = context.get("tag"), context.get("discriminator"), context.get("expected_tags")
    return _t(
        f"'{tag}' er ikke en af de tilladte værdier af {discriminator}: {expected}",
        f"'{tag}' is not one of the allowed values of {discriminator}: {expected}",
    )


_CONTEXT_DETAILS: dict[str, Callable[[dict[str, Any]], Text]] = {
    "literal_error": _choices,
    "enum": _choices,
    "greater_than_equal": lambda c: _t(f"værdien skal være mindst {c['ge']}", f"the value must be at least {c['ge']}"),
    "less_than_equal": lambda c: _t(f"værdien må højst være {c['le']}", f"the value must be at most {c['le']}"),
    "greater_than": lambda c: _t(
        f"værdien skal være større end {c['gt']}", f"the value must be greater than {c['gt']}"
    ),
    "less_than": lambda c: _t(f"værdien skal være mindre end {c['lt']}", f"the value must be less than {c['lt']}"),
    "too_short": _too_short,
    "too_long": _too_long,
    "string_too_short": lambda c: _t(
        f"teksten skal være mindst {c['min_length']} tegn lang",
        f"the text must be at least {_count(c['min_length'], 'character', 'characters')} long",
    ),
    "string_too_long": lambda c: _t(
        f"teksten må højst være {c['max_length']} tegn lang",
        f"the text must be at most {_count(c['max_length'], 'character', 'characters')} long",
    ),
    "string_pattern_mismatch": lambda c: _t(
        f"værdien skal passe til mønstret {c['pattern']}", f"the value must match the pattern {c['pattern']}"
    ),
    "decimal_max_places": lambda c: _t(
        f"værdien må højst have {_count(c['decimal_places'], 'decimal', 'decimaler')}",
        f"the value may have at most {_count(c['decimal_places'], 'decimal place', 'decimal places')}",
    ),
    "decimal_max_digits": lambda c: _t(
        f"værdien må højst have {_count(c['max_digits'], 'ciffer', 'cifre')} i alt",
        f"the value may have at most {_count(c['max_digits'], 'digit', 'digits')} in total",
    ),
    "union_tag_invalid": _union_tag,
}


def pydantic_detail(error: Any) -> Text:
    """Translate one pydantic error (an item of `ValidationError.errors()`) into Danish and English.

    Error types not listed above keep pydantic's English message in both languages.
    """
    kind = error["type"]
    fixed = _FIXED_DETAILS.get(kind)
    if fixed is not None:
        return fixed
    translate = _CONTEXT_DETAILS.get(kind)
    context = error.get("ctx")
    if translate is not None and context is not None:
        try:
            return translate(context)
        except KeyError:
            pass  # a pydantic version with other context keys; its own message follows
    message = str(error.get("msg", kind))
    return _t(message, message)
