"""Languages, bilingual texts and the choice of language per request.

Users work in Danish first, with English available. Every user-facing text is a
`Text` holding both languages; the language is picked at the edge (CLI setting or
the HTTP `Accept-Language` header), never inside the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Language = Literal["da", "en"]
LANGUAGES: tuple[Language, ...] = ("da", "en")
DEFAULT_LANGUAGE: Language = "da"


@dataclass(frozen=True, slots=True)
class Text:
    """A text in Danish and English, optionally with `str.format` placeholders."""

    da: str
    en: str

    def get(self, language: Language) -> str:
        return self.en if language == "en" else self.da

    def format(self, **params: Any) -> Text:
        return Text(da=self.da.format(**params), en=self.en.format(**params))


def _supported(tag: str) -> Language | None:
    primary = tag.strip().lower().replace("_", "-").split("-")[0]
    if primary in LANGUAGES:
        return primary
    if primary in ("nb", "nn", "no"):
        # Norwegian readers get Danish, which they read, rather than English.
        return "da"
    return None


def parse_language(value: str | None, default: Language = DEFAULT_LANGUAGE) -> Language:
    """Return `value` (such as "da", "en-GB" or "da_DK.UTF-8") as a supported language, else `default`."""
    return (_supported(value) if value else None) or default


def negotiate_language(accept_language: str | None, default: Language = DEFAULT_LANGUAGE) -> Language:
    """Pick the best supported language from an HTTP `Accept-Language` header (RFC 9110 § 12.5.4).

    >>> negotiate_language("en-GB,en;q=0.9,da;q=0.8")
    'en'
    >>> negotiate_language("fr, da;q=0.5")
    'da'
    """
    if not accept_language:
        return default
    ranked: list[tuple[float, int, Language]] = []
    for index, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0 or not tag:
            continue
        if tag.strip() == "*":
            ranked.append((quality, index, default))
            continue
        language = _supported(tag)
        if language:
            ranked.append((quality, index, language))
    if not ranked:
        return default
    ranked.sort(key=lambda entry: (-entry[0], entry[1]))
    return ranked[0][2]
