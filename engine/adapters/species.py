"""CITES species register adapter and its offline Species+ excerpt.

Production checks species against Species+, the CITES database kept by UNEP-WCMC.
Development and tests use the hand-compiled excerpt in ``data/species_plus.csv``,
whose provenance and limits are described in ``data/README.md``.
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

CITES_APPENDICES = frozenset({"I", "II", "III"})
EU_ANNEXES = frozenset({"A", "B", "C", "D"})
TAXON_GROUPS = frozenset(
    {
        "Mammalia",
        "Aves",
        "Reptilia",
        "Amphibia",
        "Actinopterygii",
        "Elasmobranchii",
        "Anthozoa",
        "Arachnida",
        "Insecta",
        "Hirudinea",
        "Gastropoda",
        "Bivalvia",
        "Plantae",
    }
)
CSV_COLUMNS = (
    "scientific_name",
    "family",
    "taxon_group",
    "common_name_da",
    "common_name_en",
    "cites_appendix",
    "eu_annex",
    "note",
)

# Minimum difflib similarity ratio for a name to count as a suggestion. It is the default
# cutoff of difflib.get_close_matches. "python regus" scores 0.96 against "python regius".
SUGGESTION_CUTOFF = 0.6


@dataclass(frozen=True)
class Taxon:
    """A taxon with its CITES appendix and EU Wildlife Trade Regulation annex."""

    scientific_name: str
    family: str
    taxon_group: str
    common_name_da: str | None
    common_name_en: str
    cites_appendix: str  # "I", "II" or "III"
    eu_annex: str  # "A", "B", "C" or "D" (annexes of Council Regulation (EC) No 338/97)
    note: str | None  # split listing, annotation or EU trade restriction, if any


class SpeciesRegister(Protocol):
    """Adapter interface for a CITES species register (Species+ in production)."""

    def find(self, scientific_name: str) -> Taxon | None: ...

    def suggest(self, text: str, limit: int = 3) -> list[str]: ...


def normalise_name(text: str) -> str:
    """Collapse runs of whitespace to one space, strip the ends and casefold."""
    return " ".join(text.split()).casefold()


class OfflineSpeciesPlus:
    """SpeciesRegister backed by the excerpt shipped in engine/adapters/data/species_plus.csv."""

    def __init__(self, path: Path | None = None) -> None:
        """Load and validate the excerpt at ``path``, or the shipped excerpt when None.

        Raises ValueError naming the file and line of the first invalid row.
        """
        if path is None:
            source = "species_plus.csv"
            text = (resources.files("engine.adapters") / "data" / "species_plus.csv").read_text(encoding="utf-8-sig")
        else:
            source = str(path)
            text = path.read_text(encoding="utf-8-sig")

        self._taxa = _parse_taxa(text, source)
        self._by_name = {normalise_name(taxon.scientific_name): taxon for taxon in self._taxa}

        # Every normalised scientific and common name, mapped to the scientific name
        # that suggest() returns for it.
        self._search_keys: list[tuple[str, str]] = []
        for taxon in self._taxa:
            names = [taxon.scientific_name, taxon.common_name_en, taxon.common_name_da]
            for name in names:
                if name:
                    self._search_keys.append((normalise_name(name), taxon.scientific_name))

    def __len__(self) -> int:
        return len(self._taxa)

    def taxa(self) -> list[Taxon]:
        """Return all taxa in file order."""
        return list(self._taxa)

    def find(self, scientific_name: str) -> Taxon | None:
        """Return the taxon with this scientific name, ignoring case and extra whitespace."""
        return self._by_name.get(normalise_name(scientific_name))

    def suggest(self, text: str, limit: int = 3) -> list[str]:
        """Return up to ``limit`` scientific names whose names are closest to ``text``.

        Scientific, English and Danish common names are compared with difflib's
        similarity ratio. Each taxon is ranked by its best-matching name, and names
        scoring below SUGGESTION_CUTOFF are left out.
        """
        query = normalise_name(text)
        if not query or limit <= 0:
            return []

        matcher = difflib.SequenceMatcher()
        matcher.set_seq2(query)
        best_scores: dict[str, float] = {}
        for key, scientific_name in self._search_keys:
            matcher.set_seq1(key)
            # real_quick_ratio and quick_ratio are upper bounds of ratio and much cheaper.
            if matcher.real_quick_ratio() < SUGGESTION_CUTOFF:
                continue
            if matcher.quick_ratio() < SUGGESTION_CUTOFF:
                continue
            score = matcher.ratio()
            if score >= SUGGESTION_CUTOFF and score > best_scores.get(scientific_name, 0.0):
                best_scores[scientific_name] = score

        ranked = sorted(best_scores.items(), key=lambda item: (-item[1], item[0]))
        return [scientific_name for scientific_name, _ in ranked[:limit]]


def _parse_taxa(text: str, source: str) -> list[Taxon]:
    """Parse and validate the excerpt CSV.

    Raises ValueError naming ``source`` and the line of the first invalid row.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(column.strip() for column in header) != CSV_COLUMNS:
        raise ValueError(f"{source}, line 1: invalid header {header!r}. Expected {','.join(CSV_COLUMNS)}")

    taxa: list[Taxon] = []
    first_line_by_name: dict[str, int] = {}
    for fields in reader:
        line = reader.line_num
        if not fields:
            continue
        taxon = _parse_row(fields, f"{source}, line {line}")
        key = normalise_name(taxon.scientific_name)
        if key in first_line_by_name:
            raise ValueError(
                f"{source}, line {line}: duplicate scientific name "
                f"{taxon.scientific_name!r}, first given on line {first_line_by_name[key]}"
            )
        first_line_by_name[key] = line
        taxa.append(taxon)
    return taxa


def _parse_row(fields: list[str], location: str) -> Taxon:
    """Build a Taxon from one CSV row, raising ValueError prefixed with ``location``."""
    if len(fields) != len(CSV_COLUMNS):
        raise ValueError(f"{location}: expected {len(CSV_COLUMNS)} fields, got {len(fields)}")
    values = dict(zip(CSV_COLUMNS, (" ".join(field.split()) for field in fields), strict=True))

    for column in ("scientific_name", "family", "common_name_en"):
        if not values[column]:
            raise ValueError(f"{location}: {column} is empty")
    if values["taxon_group"] not in TAXON_GROUPS:
        raise ValueError(
            f"{location}: invalid taxon_group {values['taxon_group']!r}. "
            f"Expected one of {', '.join(sorted(TAXON_GROUPS))}"
        )
    if values["cites_appendix"] not in CITES_APPENDICES:
        raise ValueError(f"{location}: invalid cites_appendix {values['cites_appendix']!r}. Expected I, II or III")
    if values["eu_annex"] not in EU_ANNEXES:
        raise ValueError(f"{location}: invalid eu_annex {values['eu_annex']!r}. Expected A, B, C or D")

    return Taxon(
        scientific_name=values["scientific_name"],
        family=values["family"],
        taxon_group=values["taxon_group"],
        common_name_da=values["common_name_da"] or None,
        common_name_en=values["common_name_en"],
        cites_appendix=values["cites_appendix"],
        eu_annex=values["eu_annex"],
        note=values["note"] or None,
    )
