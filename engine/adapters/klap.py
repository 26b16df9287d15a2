"""Register of Danish harbours and approved dumping sites (klappladser) for KLAP permits.

A KLAP permit allows a harbour to dump dredged seabed material at one approved dumping
site. Production reads the agency's register, which lists about 458 harbours and 114
dumping sites (84 of them in use in 2018). Development and tests use a small sample
shipped in ``data/klap_harbours.csv`` and ``data/klap_dumping_sites.csv``:

- the harbours are real, with their municipality and an approximate WGS84 position;
- the dumping sites are named after real coastal waters, but their codes, positions,
  status and capacities are illustrative and are not the agency's register.

``data/README.md`` describes the columns. A code is looked up without regard to case or
surrounding blanks, so ``" k_101 "`` finds ``K_101``.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol

from engine.adapters.natura2000 import DENMARK_EAST, DENMARK_NORTH, DENMARK_SOUTH, DENMARK_WEST

HARBOUR_COLUMNS = ("code", "name", "municipality", "latitude", "longitude")
SITE_COLUMNS = ("code", "name", "waters_da", "waters_en", "latitude", "longitude", "status", "capacity_m3")

# Our own short codes: three letters for a harbour, "K_" and three digits for a dumping site.
HARBOUR_CODE = re.compile(r"[A-Z]{3}")
SITE_CODE = re.compile(r"K_\d{3}")

# Minimum difflib similarity ratio for a code or name to be suggested (difflib's default cutoff).
SUGGESTION_CUTOFF = 0.6


class SiteStatus(StrEnum):
    APPROVED = "approved"
    CLOSED = "closed"


@dataclass(frozen=True)
class Harbour:
    """A harbour from which dredged material is taken."""

    code: str
    name: str
    municipality: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class DumpingSite:
    """An approved dumping site (klapplads) with its total approved capacity in m³."""

    code: str
    name: str
    waters_da: str
    waters_en: str
    latitude: float
    longitude: float
    status: SiteStatus
    capacity_m3: int

    @property
    def approved(self) -> bool:
        return self.status == SiteStatus.APPROVED


class KlapRegister(Protocol):
    """Adapter interface for the register of harbours and dumping sites."""

    def harbour(self, code: str) -> Harbour | None: ...

    def dumping_site(self, code: str) -> DumpingSite | None: ...

    def harbours(self) -> list[Harbour]: ...

    def dumping_sites(self) -> list[DumpingSite]: ...


def normalise_code(text: str) -> str:
    """Remove blanks and upper-case a code, as every lookup does: " k_101 " becomes "K_101"."""
    return "".join(text.split()).upper()


class OfflineKlapRegister:
    """KlapRegister backed by the shipped sample, or by the harbours and sites given."""

    def __init__(self, harbours: Iterable[Harbour] | None = None, sites: Iterable[DumpingSite] | None = None) -> None:
        shipped_harbours, shipped_sites = _shipped() if harbours is None or sites is None else ((), ())
        self._harbours = list(shipped_harbours if harbours is None else harbours)
        self._sites = list(shipped_sites if sites is None else sites)
        self._harbour_by_code = {harbour.code: harbour for harbour in self._harbours}
        self._site_by_code = {site.code: site for site in self._sites}

    def harbour(self, code: str) -> Harbour | None:
        return self._harbour_by_code.get(normalise_code(code))

    def dumping_site(self, code: str) -> DumpingSite | None:
        return self._site_by_code.get(normalise_code(code))

    def harbours(self) -> list[Harbour]:
        """Return every harbour in file order."""
        return list(self._harbours)

    def dumping_sites(self) -> list[DumpingSite]:
        """Return every dumping site, approved and closed, in file order."""
        return list(self._sites)


# Hints for a code that is not in the register -----------------------------------------------


def _close_matches(text: str, candidates: dict[str, list[str]], limit: int) -> list[str]:
    """Rank codes by the best difflib ratio of `text` against the code or any of its names."""
    query = " ".join(text.split()).casefold()
    if not query:
        return []
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(query)
    scores: dict[str, float] = {}
    for code, names in candidates.items():
        for name in names:
            matcher.set_seq1(name.casefold())
            score = matcher.ratio()
            if score >= SUGGESTION_CUTOFF and score > scores.get(code, 0.0):
                scores[code] = score
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [code for code, _ in ranked[:limit]]


def suggest_harbours(register: KlapRegister, text: str, limit: int = 3) -> list[Harbour]:
    """Return up to `limit` harbours whose code, name or municipality is closest to `text`.

    "Esbjerg" finds EBJ (Esbjerg Havn) by its municipality, and "AAH" finds AAR and AAL.
    """
    harbours = {harbour.code: harbour for harbour in register.harbours()}
    candidates = {
        code: [code, harbour.name, harbour.name.removesuffix(" Havn"), harbour.municipality]
        for code, harbour in harbours.items()
    }
    return [harbours[code] for code in _close_matches(text, candidates, limit)]


def suggest_dumping_sites(register: KlapRegister, text: str, limit: int = 3) -> list[DumpingSite]:
    """Return up to `limit` approved dumping sites whose code or name is closest to `text`."""
    sites = {site.code: site for site in register.dumping_sites() if site.approved}
    candidates = {code: [code, site.name] for code, site in sites.items()}
    return [sites[code] for code in _close_matches(text, candidates, limit)]


def distance_km(latitude_1: float, longitude_1: float, latitude_2: float, longitude_2: float) -> float:
    """Return the great-circle distance in kilometres (haversine formula, mean Earth radius 6371 km)."""
    phi_1, phi_2 = math.radians(latitude_1), math.radians(latitude_2)
    d_phi = phi_2 - phi_1
    d_lambda = math.radians(longitude_2 - longitude_1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi_1) * math.cos(phi_2) * math.sin(d_lambda / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def nearest_approved_sites(register: KlapRegister, site: DumpingSite, limit: int = 2) -> list[DumpingSite]:
    """Return the approved dumping sites nearest to `site`, nearest first."""
    others = [other for other in register.dumping_sites() if other.approved and other.code != site.code]
    others.sort(key=lambda other: distance_km(site.latitude, site.longitude, other.latitude, other.longitude))
    return others[:limit]


# Loading the data files ----------------------------------------------------------------------


@cache
def _shipped() -> tuple[tuple[Harbour, ...], tuple[DumpingSite, ...]]:
    data = resources.files("engine.adapters") / "data"
    harbours = parse_harbours((data / "klap_harbours.csv").read_text(encoding="utf-8-sig"), "klap_harbours.csv")
    sites = parse_dumping_sites(
        (data / "klap_dumping_sites.csv").read_text(encoding="utf-8-sig"), "klap_dumping_sites.csv"
    )
    return tuple(harbours), tuple(sites)


def load_register(harbours_path: Path, sites_path: Path) -> OfflineKlapRegister:
    """Load a register from two CSV files shaped like the shipped ones. Raises ValueError on a bad row."""
    return OfflineKlapRegister(
        parse_harbours(harbours_path.read_text(encoding="utf-8-sig"), str(harbours_path)),
        parse_dumping_sites(sites_path.read_text(encoding="utf-8-sig"), str(sites_path)),
    )


def _rows(text: str, source: str, columns: tuple[str, ...]) -> Iterable[tuple[str, dict[str, str]]]:
    """Yield (location, row) for each non-empty row, after checking the header and the field count."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(column.strip() for column in header) != columns:
        raise ValueError(f"{source}, line 1: invalid header {header!r}. Expected {','.join(columns)}")
    for fields in reader:
        if not fields:
            continue
        location = f"{source}, line {reader.line_num}"
        if len(fields) != len(columns):
            raise ValueError(f"{location}: expected {len(columns)} fields, got {len(fields)}")
        values = dict(zip(columns, (" ".join(field.split()) for field in fields), strict=True))
        empty = [column for column, value in values.items() if not value]
        if empty:
            raise ValueError(f"{location}: {', '.join(empty)} is empty")
        yield location, values


def _position(values: dict[str, str], location: str) -> tuple[float, float]:
    try:
        latitude, longitude = float(values["latitude"]), float(values["longitude"])
    except ValueError:
        raise ValueError(
            f"{location}: latitude and longitude must be decimal degrees, not "
            f"{values['latitude']!r} and {values['longitude']!r}"
        ) from None
    # The box around Denmark that drawn areas are checked against: it catches latitude and
    # longitude given in the wrong order, but it cannot tell land from sea.
    if not (DENMARK_SOUTH <= latitude <= DENMARK_NORTH and DENMARK_WEST <= longitude <= DENMARK_EAST):
        raise ValueError(
            f"{location}: the position {latitude}, {longitude} lies outside Denmark "
            f"(latitude {DENMARK_SOUTH} to {DENMARK_NORTH}, longitude {DENMARK_WEST} to {DENMARK_EAST})"
        )
    return latitude, longitude


def _unique(code: str, seen: dict[str, str], location: str) -> None:
    if code in seen:
        raise ValueError(f"{location}: duplicate code {code!r}, first given at {seen[code]}")
    seen[code] = location


def parse_harbours(text: str, source: str) -> list[Harbour]:
    """Parse and check the harbours CSV. Raises ValueError naming `source` and the line of a bad row."""
    harbours: list[Harbour] = []
    seen: dict[str, str] = {}
    for location, values in _rows(text, source, HARBOUR_COLUMNS):
        code = values["code"]
        if not HARBOUR_CODE.fullmatch(code):
            raise ValueError(f"{location}: invalid harbour code {code!r}. Expected three capital letters")
        _unique(code, seen, location)
        latitude, longitude = _position(values, location)
        harbours.append(Harbour(code, values["name"], values["municipality"], latitude, longitude))
    return harbours


def parse_dumping_sites(text: str, source: str) -> list[DumpingSite]:
    """Parse and check the dumping sites CSV. Raises ValueError naming `source` and the line of a bad row."""
    sites: list[DumpingSite] = []
    seen: dict[str, str] = {}
    for location, values in _rows(text, source, SITE_COLUMNS):
        code = values["code"]
        if not SITE_CODE.fullmatch(code):
            raise ValueError(f"{location}: invalid dumping site code {code!r}. Expected K_ and three digits")
        _unique(code, seen, location)
        latitude, longitude = _position(values, location)
        try:
            status = SiteStatus(values["status"])
        except ValueError:
            raise ValueError(f"{location}: invalid status {values['status']!r}. Expected approved or closed") from None
        if not values["capacity_m3"].isdigit() or int(values["capacity_m3"]) <= 0:
            raise ValueError(
                f"{location}: invalid capacity_m3 {values['capacity_m3']!r}. Expected a positive whole number"
            )
        sites.append(
            DumpingSite(
                code=code,
                name=values["name"],
                waters_da=values["waters_da"],
                waters_en=values["waters_en"],
                latitude=latitude,
                longitude=longitude,
                status=status,
                capacity_m3=int(values["capacity_m3"]),
            )
        )
    return sites
