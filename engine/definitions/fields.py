"""Field types: how a case field is declared, checked, stored and shown to guards and letters.

Each type parses raw input (JSON from a request or a task form) into a JSON-safe stored
value, or raises `FieldValueError` with a bilingual message and a hint. Stored values
are converted back for guards and templates by `to_context`, e.g. a `date` is stored as
"2026-12-04" and seen by a guard as `datetime.date(2026, 12, 4)`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pycountry
import shapely.errors
import shapely.geometry
import shapely.validation
from stdnum.dk import cvr as stdnum_cvr

from engine.adapters.klap import KlapRegister, nearest_approved_sites, suggest_dumping_sites, suggest_harbours
from engine.adapters.natura2000 import (
    DENMARK_EAST,
    DENMARK_NORTH,
    DENMARK_SOUTH,
    DENMARK_WEST,
    ProtectedSites,
    normalise_site_number,
)
from engine.i18n import Language, Text

if TYPE_CHECKING:
    from engine.adapters.species import SpeciesRegister
    from engine.definitions.model import FieldDef

# Limits for text sizes, so one request cannot store megabytes in a field.
MAX_LINE_LENGTH = 2_000
MAX_MULTILINE_LENGTH = 100_000


class FieldValueError(Exception):
    def __init__(self, code: str, text: Text, hint: Text | None = None) -> None:
        super().__init__(text.en)
        self.code = code
        self.text = text
        self.hint = hint


class Lookups(Protocol):
    """Registers that some field types consult while parsing."""

    @property
    def species(self) -> SpeciesRegister: ...

    @property
    def protected_sites(self) -> ProtectedSites: ...

    @property
    def klap(self) -> KlapRegister: ...


def _invalid(da: str, en: str, hint_da: str | None = None, hint_en: str | None = None) -> FieldValueError:
    hint = Text(hint_da, hint_en) if hint_da and hint_en else None
    return FieldValueError("invalid_value", Text(da, en), hint)


def _describe(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


class FieldType:
    name: ClassVar[str]
    allowed_options: ClassVar[frozenset[str]] = frozenset()
    json_type: ClassVar[dict[str, Any]] = {"type": "string"}

    def check_definition(self, field: FieldDef) -> list[str]:
        """Return what is wrong with the field's declaration for this type (English details)."""
        return []

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        raise NotImplementedError

    def to_context(self, stored: Any) -> Any:
        return stored

    def example(self, field: FieldDef) -> Any:
        return field.example

    def json_schema(self, field: FieldDef, language: Language = "da") -> dict[str, Any]:
        """Describe the accepted values as JSON Schema, for forms and API clients."""
        schema = dict(self.json_type)
        schema["title"] = field.label.get(language)
        if field.help is not None:
            schema["description"] = field.help.get(language)
        numeric = schema.get("type") in ("integer", "number") or "number" in (schema.get("type") or [])
        if numeric and field.min is not None:
            schema["minimum"] = float(field.min) if field.min % 1 else int(field.min)
        if numeric and field.max is not None:
            schema["maximum"] = float(field.max) if field.max % 1 else int(field.max)
        return schema


# Characters that reverse or isolate text direction can make a stored name read differently
# from what it contains (Unicode Technical Report #36, "bidirectional text spoofing").
_DIRECTION_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_text(value: str) -> str:
    """Reject text that cannot be stored or read back faithfully; return it unchanged otherwise.

    Refused: lone surrogates (not encodable as UTF-8), control characters other than tab and
    line breaks (PostgreSQL cannot store NUL at all), text-direction controls, and text made
    only of invisible characters.
    """
    for character in value:
        category = unicodedata.category(character)
        if category == "Cs":
            raise _invalid(
                "Indeholder tegn, der ikke er gyldig Unicode.",
                "Contains characters that are not valid Unicode.",
                "Send teksten som UTF-8.",
                "Send the text as UTF-8.",
            )
        if category == "Cc" and character not in "\t\n\r":
            raise _invalid(
                f"Indeholder kontroltegnet U+{ord(character):04X}.",
                f"Contains the control character U+{ord(character):04X}.",
                "Fjern tegnet; kun tabulator og linjeskift er tilladt.",
                "Remove the character; only tab and line breaks are allowed.",
            )
        if character in _DIRECTION_CONTROLS:
            raise _invalid(
                f"Indeholder tegnet U+{ord(character):04X}, der vender skriveretningen.",
                f"Contains the character U+{ord(character):04X}, which changes the writing direction.",
            )
    visible = [c for c in value if not c.isspace() and unicodedata.category(c) not in ("Cf", "Zs", "Mn")]
    if value and not visible:
        raise _invalid("Indeholder ingen synlige tegn.", "Contains no visible characters.")
    return value


def _require_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise _invalid(
            f"Skal være tekst, ikke {_describe(raw)}.",
            f"Must be text, not {_describe(raw)}.",
            "Send værdien som en JSON-streng i anførselstegn.",
            "Send the value as a JSON string in quotes.",
        )
    return check_text(raw)


class TextType(FieldType):
    name = "text"
    allowed_options = frozenset({"min_length", "max_length", "pattern", "multiline"})

    def check_definition(self, field: FieldDef) -> list[str]:
        problems = []
        if field.pattern is not None:
            try:
                re.compile(field.pattern)
            except re.error as error:
                problems.append(f"the pattern does not compile ({error})")
        if field.min_length is not None and field.max_length is not None and field.min_length > field.max_length:
            problems.append("min_length is greater than max_length")
        return problems

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = _require_str(raw).strip()
        limit = field.max_length or (MAX_MULTILINE_LENGTH if field.multiline else MAX_LINE_LENGTH)
        if not field.multiline and ("\n" in value or "\r" in value):
            raise _invalid("Må kun være én linje.", "Must be a single line.")
        if len(value) > limit:
            raise _invalid(
                f"Er {len(value)} tegn; højst {limit} er tilladt.",
                f"Is {len(value)} characters long; at most {limit} are allowed.",
            )
        if field.min_length is not None and len(value) < field.min_length:
            raise _invalid(
                f"Skal være mindst {field.min_length} tegn.",
                f"Must be at least {field.min_length} characters long.",
            )
        if not value:
            raise _invalid("Må ikke være tom.", "Must not be empty.")
        if field.pattern is not None and not re.fullmatch(field.pattern, value):
            raise _invalid(
                f"Har ikke den forventede form ({field.pattern}).",
                f"Does not have the expected form ({field.pattern}).",
            )
        return value

    def json_schema(self, field: FieldDef, language: Language = "da") -> dict[str, Any]:
        schema = super().json_schema(field, language)
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
        if field.min_length is not None:
            schema["minLength"] = field.min_length
        if field.pattern is not None:
            schema["pattern"] = field.pattern
        return schema


def _bounds(field: FieldDef) -> list[str]:
    if field.min is not None and field.max is not None and field.min > field.max:
        return ["min is greater than max"]
    return []


_UNIT_PARTIES = " parter"


def _check_range(value: Decimal | int, field: FieldDef, unit: str = "") -> None:
    end = "" if unit.endswith(".") else "."
    if field.min is not None and value < field.min:
        raise _invalid(
            f"Skal være mindst {field.min}{unit}{end}",
            f"Must be at least {field.min}{unit}{end}",
        )
    if field.max is not None and value > field.max:
        raise _invalid(
            f"Må højst være {field.max}{unit}{end}",
            f"Must be at most {field.max}{unit}{end}",
        )


class IntegerType(FieldType):
    name = "integer"
    allowed_options = frozenset({"min", "max"})
    json_type = {"type": "integer"}

    def check_definition(self, field: FieldDef) -> list[str]:
        problems = _bounds(field)
        for bound in (field.min, field.max):
            if bound is not None and bound != bound.to_integral_value():
                problems.append(f"the bound {bound} is not a whole number")
        return problems

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _invalid(
                f"Skal være et helt tal, ikke {_describe(raw)}.",
                f"Must be a whole number, not {_describe(raw)}.",
            )
        _check_range(raw, field)
        return raw


# Larger numbers do not fit an amount in øre in a 64-bit column, and Decimal arithmetic on them fails.
MAX_NUMBER_DIGITS = 15


def _to_decimal(raw: Any) -> Decimal:
    if isinstance(raw, bool):
        raise _invalid("Skal være et tal.", "Must be a number.")
    try:
        if isinstance(raw, int | str):
            value = Decimal(str(raw).strip().replace(",", ".") if isinstance(raw, str) else raw)
        elif isinstance(raw, float):
            value = Decimal(repr(raw))
        else:
            raise InvalidOperation
    except InvalidOperation:
        raise _invalid(
            f"Skal være et tal, ikke {_describe(raw)}.",
            f"Must be a number, not {_describe(raw)}.",
            "Skriv fx 1250.50.",
            "Write for example 1250.50.",
        ) from None
    if not value.is_finite():
        raise _invalid("Skal være et endeligt tal.", "Must be a finite number.")
    if value.adjusted() >= MAX_NUMBER_DIGITS:
        raise _invalid(
            f"Tallet er for stort; det må højst have {MAX_NUMBER_DIGITS} cifre før kommaet.",
            f"The number is too large; it may have at most {MAX_NUMBER_DIGITS} digits before the decimal point.",
        )
    return value


class DecimalType(FieldType):
    name = "decimal"
    allowed_options = frozenset({"min", "max"})
    json_type = {"type": ["number", "string"]}

    def check_definition(self, field: FieldDef) -> list[str]:
        return _bounds(field)

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = _to_decimal(raw)
        _check_range(value, field)
        return str(value)

    def to_context(self, stored: Any) -> Any:
        return Decimal(stored) if stored is not None else None


class MoneyType(FieldType):
    """An amount in DKK; stored as an integer number of øre, never as a float."""

    name = "money"
    allowed_options = frozenset({"min", "max"})
    json_type = {"type": ["number", "string"], "description": "DKK with at most two decimals"}

    def check_definition(self, field: FieldDef) -> list[str]:
        return _bounds(field)

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = _to_decimal(raw)
        if value != value.quantize(Decimal("0.01")):
            raise _invalid(
                "Beløbet må højst have to decimaler (øre).",
                "The amount may have at most two decimals (øre).",
            )
        _check_range(value, field, " kr.")
        return int(value * 100)

    def to_context(self, stored: Any) -> Any:
        return Decimal(stored) / 100 if stored is not None else None


class BooleanType(FieldType):
    name = "boolean"
    json_type = {"type": "boolean"}

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        if not isinstance(raw, bool):
            raise _invalid(
                f"Skal være true eller false, ikke {_describe(raw)}.",
                f"Must be true or false, not {_describe(raw)}.",
            )
        return raw


class DateType(FieldType):
    name = "date"
    allowed_options = frozenset({"min", "max"})
    json_type = {"type": "string", "format": "date"}

    def check_definition(self, field: FieldDef) -> list[str]:
        if field.min is not None or field.max is not None:
            return ["min and max do not apply to dates"]
        return []

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        text = _require_str(raw).strip()
        try:
            return date.fromisoformat(text).isoformat() if len(text) == 10 else _bad_date(text)
        except ValueError:
            return _bad_date(text)

    def to_context(self, stored: Any) -> Any:
        return date.fromisoformat(stored) if stored else None


def _bad_date(text: str) -> Any:
    raise _invalid(
        f"'{text}' er ikke en gyldig dato.",
        f"'{text}' is not a valid date.",
        "Skriv datoen som ÅÅÅÅ-MM-DD, fx 2026-12-04.",
        "Write the date as YYYY-MM-DD, e.g. 2026-12-04.",
    )


class EnumType(FieldType):
    name = "enum"
    allowed_options = frozenset({"options"})

    def check_definition(self, field: FieldDef) -> list[str]:
        if not field.options:
            return ["an enum needs a non-empty 'options' list"]
        values = [option.value for option in field.options]
        duplicates = sorted({value for value in values if values.count(value) > 1})
        return [f"duplicate option values: {', '.join(duplicates)}"] if duplicates else []

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        values = [option.value for option in field.options or []]
        if raw not in values:
            allowed = ", ".join(values)
            raise FieldValueError(
                "invalid_choice",
                Text(
                    f"{_describe(raw)} er ikke en af de tilladte værdier.", f"{_describe(raw)} is not an allowed value."
                ),
                Text(f"Vælg en af: {allowed}.", f"Choose one of: {allowed}."),
            )
        return raw

    def json_schema(self, field: FieldDef, language: Language = "da") -> dict[str, Any]:
        schema = super().json_schema(field, language)
        schema["enum"] = [option.value for option in field.options or []]
        return schema

    def example(self, field: FieldDef) -> Any:
        if field.example is not None:
            return field.example
        return field.options[0].value if field.options else None


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


class EmailType(FieldType):
    name = "email"
    json_type = {"type": "string", "format": "email"}

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = _require_str(raw).strip()
        if len(value) > 254 or not _EMAIL.match(value):
            raise _invalid(
                f"'{value}' er ikke en gyldig e-mailadresse.",
                f"'{value}' is not a valid e-mail address.",
                "Skriv fx navn@firma.dk.",
                "Write for example name@company.dk.",
            )
        return value


class CvrType(FieldType):
    """Danish company number: 8 digits, first not 0, weights 2,7,6,5,4,3,2,1, sum divisible by 11."""

    name = "cvr"
    json_type = {"type": "string", "pattern": r"^[1-9]\d{7}$"}

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = _require_str(raw).replace(" ", "")
        if not re.fullmatch(r"[1-9]\d{7}", value):
            raise _invalid(
                f"'{value}' er ikke et CVR-nummer; det skal være 8 cifre og ikke starte med 0.",
                f"'{value}' is not a CVR number; it must be 8 digits and not start with 0.",
            )
        if not stdnum_cvr.is_valid(value):
            raise FieldValueError(
                "invalid_checksum",
                Text(
                    f"CVR-nummeret {value} har en forkert kontrolsum (modulus 11).",
                    f"The CVR number {value} has a wrong check digit (modulus 11).",
                ),
                Text("Tjek nummeret for tastefejl.", "Check the number for typing errors."),
            )
        return value


class CprType(FieldType):
    """Danish personal number DDMMYY-SSSS. The modulus-11 check was abandoned in 2007 and is not applied."""

    name = "cpr"
    json_type = {"type": "string", "pattern": r"^\d{6}-?\d{4}$"}

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = _require_str(raw).strip()
        match = re.fullmatch(r"(\d{2})(\d{2})(\d{2})-?(\d{4})", value)
        if not match:
            raise _invalid(
                "Er ikke et CPR-nummer på formen DDMMÅÅ-XXXX.",
                "Is not a CPR number of the form DDMMYY-XXXX.",
            )
        day, month, year, serial = match.groups()
        if _cpr_birth_date(int(day), int(month), int(year), int(serial[0])) is None:
            raise _invalid(
                "CPR-nummerets første seks cifre er ikke en gyldig dato.",
                "The first six digits of the CPR number are not a valid date.",
            )
        return f"{day}{month}{year}-{serial}"


def _cpr_birth_date(day: int, month: int, year: int, seventh: int) -> date | None:
    # The 7th digit and the two-digit year give the century (CPR-kontoret's table).
    if seventh <= 3:
        century = 1900
    elif seventh in (4, 9):
        century = 2000 if year <= 36 else 1900
    elif year <= 57:
        century = 2000
    else:
        century = 1800
    try:
        return date(century + year, month, day)
    except ValueError:
        return None


class CountryType(FieldType):
    """ISO 3166-1 alpha-2 country code, upper case."""

    name = "country"
    json_type = {"type": "string", "pattern": "^[A-Z]{2}$"}

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = _require_str(raw).strip().upper()
        if len(value) != 2 or pycountry.countries.get(alpha_2=value) is None:
            raise FieldValueError(
                "unknown_country",
                Text(
                    f"'{raw}' er ikke en landekode efter ISO 3166-1.",
                    f"'{raw}' is not an ISO 3166-1 country code.",
                ),
                Text("Brug to bogstaver, fx DK, DE eller TG.", "Use two letters, e.g. DK, DE or TG."),
            )
        return value


class PostcodeType(FieldType):
    """Danish postcode: four digits, written as text so that a leading zero survives."""

    name = "postcode"
    json_type = {"type": "string", "pattern": r"^\d{4}$"}

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = _require_str(raw).strip()
        # Danish postcodes run from 0555 (a scanning address) to 9990; 0000-0554 are not issued.
        if not re.fullmatch(r"\d{4}", value) or not 555 <= int(value) <= 9990:
            raise _invalid(
                f"'{value}' er ikke et dansk postnummer (fire cifre fra 0555 til 9990).",
                f"'{value}' is not a Danish postcode (four digits from 0555 to 9990).",
            )
        return value


class SpeciesType(FieldType):
    """Scientific name of a taxon in the CITES species register."""

    name = "species"

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = " ".join(_require_str(raw).split())
        taxon = lookups.species.find(value)
        if taxon is None:
            suggestions = lookups.species.suggest(value)
            hint = (
                Text(f"Mente du: {', '.join(suggestions)}?", f"Did you mean: {', '.join(suggestions)}?")
                if suggestions
                else Text(
                    "Angiv det videnskabelige navn som i Species+, fx Python regius.",
                    "Give the scientific name as in Species+, e.g. Python regius.",
                )
            )
            raise FieldValueError(
                "unknown_species",
                Text(
                    f"Arten '{value}' findes ikke i CITES-artsregistret.",
                    f"The species '{value}' is not in the CITES species register.",
                ),
                hint,
            )
        return taxon.scientific_name


class Natura2000SiteType(FieldType):
    """Number of a site in the register of Natura 2000 sites, such as "N1", stored as the register writes it.

    Case, blanks and leading zeros are ignored: "n1", " N1 " and "N 01" are all stored as "N1".
    """

    name = "natura2000_site"
    json_type = {"type": "string", "description": "Natura 2000 site number, e.g. N1"}

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        text = " ".join(_require_str(raw).split())
        if not text:
            raise _invalid("Må ikke være tom.", "Must not be empty.")
        number = normalise_site_number(text)
        site = lookups.protected_sites.find(number) if number else None
        if site is not None:
            return site.number

        suggestions = [candidate.label for candidate in lookups.protected_sites.suggest(text)]
        hint = (
            Text(f"Mente du: {', '.join(suggestions)}?", f"Did you mean: {', '.join(suggestions)}?")
            if suggestions
            else Text(
                "Angiv områdets nummer som i Miljøstyrelsens Natura 2000-planer, fx N1 for Skagens Gren og Skagerak.",
                "Give the site's number as in Miljøstyrelsen's Natura 2000 plans, e.g. N1 for Skagens Gren og "
                "Skagerak.",
            )
        )
        if number is None:
            raise FieldValueError(
                "invalid_value",
                Text(
                    f"{_describe(text)} er ikke et nummer på et Natura 2000-område.",
                    f"{_describe(text)} is not the number of a Natura 2000 site.",
                ),
                hint,
            )
        raise FieldValueError(
            "unknown_natura2000_site",
            Text(
                f"Natura 2000-området {number} findes ikke i registret over Natura 2000-områder.",
                f"The Natura 2000 site {number} is not in the register of Natura 2000 sites.",
            ),
            hint,
        )


def _codes(entries: list[tuple[str, str]]) -> str:
    return ", ".join(f"{code} ({name})" for code, name in entries)


class HarbourType(FieldType):
    """Code of a harbour in the KLAP register, such as "AAR" for Aarhus Havn. Case and blanks are ignored."""

    name = "harbour"
    json_type = {"type": "string", "description": "Harbour code in the KLAP register, e.g. AAR"}

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = " ".join(_require_str(raw).split())
        harbour = lookups.klap.harbour(value)
        if harbour is not None:
            return harbour.code

        suggestions = _codes([(found.code, found.name) for found in suggest_harbours(lookups.klap, value)])
        raise FieldValueError(
            "unknown_harbour",
            Text(
                f"Havnen {_describe(value)} findes ikke i registret over havne.",
                f"The harbour {_describe(value)} is not in the register of harbours.",
            ),
            Text(f"Mente du: {suggestions}?", f"Did you mean: {suggestions}?")
            if suggestions
            else Text(
                "Angiv havnens kode fra havneregistret, fx AAR for Aarhus Havn.",
                "Give the harbour's code from the register of harbours, e.g. AAR for Aarhus Havn.",
            ),
        )


class DumpingSiteType(FieldType):
    """Code of an approved dumping site (klapplads) in the KLAP register, such as "K_101".

    Every value parsed belongs to a new or changed application, so a site that the
    register marks as closed is rejected, with the nearest approved sites as a hint.
    """

    name = "dumping_site"
    json_type = {"type": "string", "description": "Dumping site code in the KLAP register, e.g. K_101"}

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        value = " ".join(_require_str(raw).split())
        site = lookups.klap.dumping_site(value)
        if site is None:
            suggestions = _codes([(found.code, found.name) for found in suggest_dumping_sites(lookups.klap, value)])
            raise FieldValueError(
                "unknown_dumping_site",
                Text(
                    f"Klappladsen {_describe(value)} findes ikke i registret over klappladser.",
                    f"The dumping site {_describe(value)} is not in the register of dumping sites.",
                ),
                Text(f"Mente du: {suggestions}?", f"Did you mean: {suggestions}?")
                if suggestions
                else Text(
                    "Angiv klappladsens kode fra registret, fx K_101 for Aarhus Bugt.",
                    "Give the dumping site's code from the register, e.g. K_101 for Aarhus Bugt.",
                ),
            )
        if not site.approved:
            nearest = _codes([(other.code, other.name) for other in nearest_approved_sites(lookups.klap, site)])
            raise FieldValueError(
                "dumping_site_closed",
                Text(
                    f"Klappladsen {site.code} ({site.name}) er lukket og kan ikke bruges i nye tilladelser.",
                    f"The dumping site {site.code} ({site.name}) is closed and cannot be used in new permits.",
                ),
                Text(
                    f"Vælg en godkendt klapplads; de nærmeste er {nearest}.",
                    f"Choose an approved dumping site; the nearest are {nearest}.",
                )
                if nearest
                else None,
            )
        return site.code


MAX_GEOMETRY_POSITIONS = 20_000


def _positions(coordinates: Any, depth: int) -> list[Any]:
    """Flatten GeoJSON coordinates of the given nesting depth into a list of positions."""
    if depth == 0:
        return [coordinates]
    if not isinstance(coordinates, list):
        raise _invalid("Koordinaterne har ikke GeoJSON-form.", "The coordinates are not shaped as GeoJSON.")
    return [position for item in coordinates for position in _positions(item, depth - 1)]


def _check_position(position: Any) -> None:
    """Reject a GeoJSON position that is not [longitude, latitude] (optionally with a height) in WGS84."""
    if (
        not isinstance(position, list)
        or len(position) not in (2, 3)
        or not all(isinstance(value, int | float) and not isinstance(value, bool) for value in position)
    ):
        raise _invalid(
            f"{_describe(position)} er ikke et punkt i WGS84: et punkt skrives [længdegrad, breddegrad] med to tal.",
            f"{_describe(position)} is not a point in WGS84: a point is written [longitude, latitude] with two "
            "numbers.",
        )
    if not (-180 <= position[0] <= 180 and -90 <= position[1] <= 90):
        raise _invalid(
            f"Punktet {_describe(position)} ligger uden for WGS84: længdegraden skal være mellem -180 og 180, "
            "og breddegraden mellem -90 og 90.",
            f"The point {_describe(position)} is outside WGS84: the longitude must be between -180 and 180, "
            "and the latitude between -90 and 90.",
            "Angiv koordinaterne i grader (WGS84), ikke i meter (fx UTM), med længdegraden først.",
            "Give the coordinates in degrees (WGS84), not in metres (such as UTM), with the longitude first.",
        )


def _ring_names(geometry: dict[str, Any]) -> list[tuple[Text, Any]]:
    """Return each ring of a Polygon or MultiPolygon with a name for messages, e.g. "The outer ring of polygon 2"."""
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    named: list[tuple[Text, Any]] = []
    for polygon_index, polygon in enumerate(polygons, start=1):
        for ring_index, ring in enumerate(polygon):
            if ring_index == 0:
                name = Text("Den ydre ring", "The outer ring")
            else:
                name = Text(f"Hul nr. {ring_index}", f"Hole {ring_index}")
            if len(polygons) > 1:
                name = Text(f"{name.da} i delflade nr. {polygon_index}", f"{name.en} of polygon {polygon_index}")
            named.append((name, ring))
    return named


def _check_ring(name: Text, ring: Any) -> None:
    """Reject a ring with fewer than four positions or whose last position differs from its first."""
    if not isinstance(ring, list) or len(ring) < 4:
        count = len(ring) if isinstance(ring, list) else 0
        raise _invalid(
            f"{name.da} er ikke lukket: den har kun {count} punkter, og en lukket ring skal have mindst fire, "
            "hvor det sidste er lig det første.",
            f"{name.en} is not closed: it has only {count} points, and a closed ring needs at least four, the "
            "last equal to the first.",
        )
    if ring[0] != ring[-1]:
        raise _invalid(
            f"{name.da} er ikke lukket: det sidste punkt {_describe(ring[-1])} er ikke lig det første "
            f"{_describe(ring[0])}.",
            f"{name.en} is not closed: the last point {_describe(ring[-1])} differs from the first "
            f"{_describe(ring[0])}.",
            "Gentag det første punkt som ringens sidste punkt.",
            "Repeat the first point as the last point of the ring.",
        )


# The reasons GEOS gives for an invalid polygon (shapely.validation.explain_validity), in plain words.
_VALIDITY_REASONS: dict[str, Text] = {
    "Self-intersection": Text("kanterne krydser hinanden", "its edges cross each other"),
    "Ring Self-intersection": Text("en ring rører sig selv", "a ring touches itself"),
    "Hole lies outside shell": Text("et hul ligger uden for den ydre ring", "a hole lies outside the outer ring"),
    "Holes are nested": Text("et hul ligger inde i et andet hul", "a hole lies inside another hole"),
    "Interior is disconnected": Text(
        "hullerne deler fladen i flere stykker", "its holes split it into separate pieces"
    ),
    "Nested shells": Text("en delflade ligger inde i en anden", "one of its polygons lies inside another"),
    "Duplicate Rings": Text("to af ringene er ens", "two of its rings are the same"),
    "Too few distinct points in geometry component": Text(
        "en ring har for få forskellige punkter", "a ring has too few distinct points"
    ),
    "Invalid Coordinate": Text("et punkt er ikke et gyldigt tal", "a point is not a valid number"),
}
# explain_validity returns the reason followed by the position, e.g. "Self-intersection[9.51 56.175]".
_VALIDITY_EXPLANATION = re.compile(r"(?P<reason>[^\[]+)\[(?P<x>\S+) (?P<y>\S+)\]")


def _invalid_geometry(shape: Any) -> FieldValueError:
    """Explain in Danish and English why shapely finds a geometry invalid, and where."""
    hint = Text(
        "Tegn fladen igen, så kanterne ikke krydser hinanden, og ringene er lukkede.",
        "Draw the area again so that its edges do not cross and its rings are closed.",
    )
    if shape.is_empty:
        return FieldValueError("invalid_geometry", Text("Fladen er tom.", "The area is empty."), hint)

    explanation = shapely.validation.explain_validity(shape).strip()
    match = _VALIDITY_EXPLANATION.fullmatch(explanation)
    reason = match["reason"].strip() if match else explanation
    plain = _VALIDITY_REASONS.get(reason, Text(reason, reason))
    where = Text("", "")
    if match:
        longitude, latitude = _degrees(match["x"]), _degrees(match["y"])
        where = Text(
            f" ved længdegrad {longitude}, breddegrad {latitude}", f" at longitude {longitude}, latitude {latitude}"
        )
    return FieldValueError(
        "invalid_geometry",
        Text(
            # GEOS names the reason in English; the Danish text gives only the plain words for it.
            f"Fladen er ugyldig: {plain.da}{where.da}."
            if reason in _VALIDITY_REASONS
            else f"Fladen er ugyldig ({reason}){where.da}.",
            f"The area is invalid ({reason}): {plain.en}{where.en}.",
        ),
        hint,
    )


def _degrees(text: str) -> str:
    """Format a coordinate from a GEOS message with at most six decimals (about 0.1 m)."""
    try:
        return f"{float(text):.6f}".rstrip("0").rstrip(".")
    except ValueError:
        return text


class GeometryType(FieldType):
    """An area drawn on a map: a GeoJSON Polygon or MultiPolygon in WGS84 (longitude, latitude).

    The geometry must be valid in the OGC simple-features sense (closed rings, no
    self-intersections), which shapely checks; the reason for an invalid one is returned.
    """

    name = "geometry"
    json_type = {"type": "object", "description": "GeoJSON Polygon or MultiPolygon, WGS84"}

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        geometry = raw.get("geometry") if isinstance(raw, dict) and raw.get("type") == "Feature" else raw
        if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            raise _invalid(
                "Skal være en GeoJSON-flade (Polygon eller MultiPolygon).",
                "Must be a GeoJSON area (Polygon or MultiPolygon).",
                'Send fx {"type": "Polygon", "coordinates": [[[lon, lat], ...]]} i WGS84.',
                'Send for example {"type": "Polygon", "coordinates": [[[lon, lat], ...]]} in WGS84.',
            )
        depth = 3 if geometry["type"] == "Polygon" else 4
        positions = _positions(geometry.get("coordinates"), depth - 1)
        if len(positions) > MAX_GEOMETRY_POSITIONS:
            raise _invalid(
                f"Fladen har {len(positions)} punkter; højst {MAX_GEOMETRY_POSITIONS} er tilladt.",
                f"The area has {len(positions)} points; at most {MAX_GEOMETRY_POSITIONS} are allowed.",
                "Forenkl tegningen.",
                "Simplify the drawing.",
            )
        for position in positions:
            _check_position(position)
        for name, ring in _ring_names(geometry):
            _check_ring(name, ring)
        outside = [
            position
            for position in positions
            if not (DENMARK_WEST <= position[0] <= DENMARK_EAST and DENMARK_SOUTH <= position[1] <= DENMARK_NORTH)
        ]
        if outside:
            raise _invalid(
                f"Punktet {_describe(outside[0])} ligger uden for Danmark.",
                f"The point {_describe(outside[0])} lies outside Denmark.",
                "Angiv længdegrad før breddegrad, fx [9.50, 56.17], i WGS84.",
                "Give longitude before latitude, e.g. [9.50, 56.17], in WGS84.",
            )
        try:
            shape = shapely.geometry.shape(geometry)
        except (ValueError, TypeError, AttributeError, shapely.errors.ShapelyError) as error:
            raise _invalid(
                f"Fladen kan ikke læses: {error}.",
                f"The area cannot be read: {error}.",
            ) from None
        if shape.is_empty or not shape.is_valid:
            raise _invalid_geometry(shape)
        return {"type": geometry["type"], "coordinates": geometry["coordinates"]}


def _party_error(index: int, da: str, en: str) -> FieldValueError:
    return _invalid(f"Part nr. {index + 1}: {da}", f"Party {index + 1}: {en}")


class PartiesType(FieldType):
    """Several parties who apply together: a list of {name, cvr or cpr, email, share}.

    `min` and `max` bound the number of parties; when shares (percent) are given for every
    party they must add up to 100.
    """

    name = "parties"
    allowed_options = frozenset({"min", "max"})
    json_type = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "cvr": {"type": "string"},
                "cpr": {"type": "string"},
                "email": {"type": "string"},
                "share": {"type": ["number", "string"]},
            },
            "required": ["name"],
        },
    }

    def check_definition(self, field: FieldDef) -> list[str]:
        return _bounds(field)

    def json_schema(self, field: FieldDef, language: Language = "da") -> dict[str, Any]:
        schema = super().json_schema(field, language)
        schema["minItems"] = int(field.min) if field.min is not None else 1
        if field.max is not None:
            schema["maxItems"] = int(field.max)
        return schema

    def parse(self, raw: Any, field: FieldDef, lookups: Lookups) -> Any:
        if not isinstance(raw, list) or not raw:
            raise _invalid("Skal være en liste med mindst én part.", "Must be a list with at least one party.")
        _check_range(len(raw), field, _UNIT_PARTIES)
        parties: list[dict[str, Any]] = []
        seen: set[str] = set()
        for index, entry in enumerate(raw):
            if not isinstance(entry, dict):
                raise _party_error(index, "skal være et JSON-objekt.", "must be a JSON object.")
            unknown = sorted(set(entry) - {"name", "cvr", "cpr", "email", "share"})
            if unknown:
                raise _party_error(
                    index, f"ukendte felter {', '.join(unknown)}.", f"unknown fields {', '.join(unknown)}."
                )
            party: dict[str, Any] = {"name": TextType().parse(entry.get("name"), field, lookups)}
            if entry.get("cvr") is not None:
                party["cvr"] = CvrType().parse(entry["cvr"], field, lookups)
            if entry.get("cpr") is not None:
                party["cpr"] = CprType().parse(entry["cpr"], field, lookups)
            if "cvr" not in party and "cpr" not in party:
                raise _party_error(index, "angiv CVR- eller CPR-nummer.", "give a CVR or CPR number.")
            if entry.get("email") is not None:
                party["email"] = EmailType().parse(entry["email"], field, lookups)
            if entry.get("share") is not None:
                share = _to_decimal(entry["share"])
                if not Decimal(0) < share <= Decimal(100):
                    raise _party_error(
                        index,
                        "andelen skal være mellem 0 og 100 procent.",
                        "the share must be between 0 and 100 percent.",
                    )
                party["share"] = str(share)
            identity = party.get("cvr") or party.get("cpr") or ""
            if identity in seen:
                raise _party_error(index, "parten står to gange.", "the party is listed twice.")
            seen.add(identity)
            parties.append(party)
        shares = [Decimal(party["share"]) for party in parties if "share" in party]
        if shares and (len(shares) != len(parties) or sum(shares) != Decimal(100)):
            raise _invalid(
                "Andelene skal angives for alle parter og give 100 procent tilsammen.",
                "Shares must be given for every party and add up to 100 percent.",
            )
        return parties


FIELD_TYPES: dict[str, FieldType] = {
    field_type.name: field_type
    for field_type in (
        TextType(),
        IntegerType(),
        DecimalType(),
        MoneyType(),
        BooleanType(),
        DateType(),
        EnumType(),
        EmailType(),
        CvrType(),
        CprType(),
        CountryType(),
        PostcodeType(),
        SpeciesType(),
        Natura2000SiteType(),
        HarbourType(),
        DumpingSiteType(),
        GeometryType(),
        PartiesType(),
    )
}

OPTION_NAMES = ("min", "max", "min_length", "max_length", "pattern", "multiline", "options")
