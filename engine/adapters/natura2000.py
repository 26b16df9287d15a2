"""Natura 2000 sites: the GIS adapter interface, its offline dataset and area measurement.

In production the sites and their boundaries come from Miljøstyrelsen, which publishes
them through Danmarks Miljøportal. Development and tests use the offline dataset in
``data/natura2000_sites.geojson``. Its sites have their real numbers and names, but each
boundary is a simplified, approximate drawing around the site's location, and every
feature is marked with ``"simplified": true``. An overlap measured against the offline
dataset is therefore only an approximation and must not decide a real case.

Areas are measured in ETRS89 / UTM zone 32N (EPSG:25832), the Danish standard projection,
after projecting each WGS84 position (longitude first, as GeoJSON orders them):

    >>> sites = OfflineNatura2000Sites()
    >>> sites.find(" n12 ").label
    'N12 Store Vildmose'
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import shapely
import shapely.errors
import shapely.geometry
import shapely.validation
from numpy.typing import NDArray
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

# A box around Denmark (Jutland, the islands, Bornholm and the territorial sea) in WGS84.
# Areas are measured in UTM zone 32N, which is only meaningful here; the box also catches
# latitude and longitude given in the wrong order.
DENMARK_WEST, DENMARK_EAST = 7.0, 15.7
DENMARK_SOUTH, DENMARK_NORTH = 54.4, 58.0

# A site number is "N" followed by one to three digits. Input may be lower case or padded
# ("n 012"), and the canonical form has no blank and no leading zeros ("N12").
_SITE_NUMBER = re.compile(r"[Nn]\s*0*([1-9][0-9]{0,2})")
_CANONICAL_NUMBER = re.compile(r"N[1-9][0-9]{0,2}")
_DIGITS = re.compile(r"[0-9]+")

# Minimum difflib similarity ratio for a site name to count as a suggestion. It is the default
# cutoff of difflib.get_close_matches. "stor vildmose" scores 0.96 against "store vildmose".
SUGGESTION_CUTOFF = 0.6

# An overlap smaller than this is rounding noise from projecting two outlines that share a
# border, not land inside the site.
MIN_OVERLAP_SQUARE_METRES = 1.0

_TO_UTM32 = Transformer.from_crs("EPSG:4326", "EPSG:25832", always_xy=True)
_HECTARE = Decimal("0.01")


def _project_coordinates(coordinates: NDArray[np.float64]) -> NDArray[np.float64]:
    x, y = _TO_UTM32.transform(coordinates[:, 0], coordinates[:, 1])
    return np.column_stack((x, y))


def project_to_utm32(geometry: BaseGeometry) -> BaseGeometry:
    """Project a WGS84 geometry (longitude, latitude) to ETRS89 / UTM zone 32N, in metres."""
    return shapely.transform(geometry, _project_coordinates)


def hectares(square_metres: float) -> Decimal:
    """Convert an area in square metres to hectares, rounded to 0.01 ha (100 m²)."""
    return (Decimal(repr(square_metres)) / 10_000).quantize(_HECTARE)


def normalise_site_number(text: str) -> str | None:
    """Return a site number in canonical form ("n 012" → "N12"), or None if `text` is not one."""
    match = _SITE_NUMBER.fullmatch(text.strip())
    return f"N{match.group(1)}" if match else None


@dataclass(frozen=True)
class Natura2000Site:
    """A Natura 2000 site with its boundary in WGS84 and projected to UTM zone 32N."""

    number: str  # canonical form, such as "N1"
    name: str
    simplified: bool  # True when the boundary is an approximate drawing, not the official one
    boundary: BaseGeometry = field(compare=False, repr=False)
    projected: BaseGeometry = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        """The number and name together, such as "N12 Store Vildmose"."""
        return f"{self.number} {self.name}"

    @property
    def area_ha(self) -> Decimal:
        return hectares(self.projected.area)


@dataclass(frozen=True)
class Overlap:
    """How much of a drawn area lies inside a Natura 2000 site."""

    site_number: str
    drawn_ha: Decimal  # the whole drawn area
    inside_ha: Decimal  # the part of it inside the site
    share_percent: Decimal  # inside_ha as a percentage of drawn_ha, from the unrounded areas
    intersects: bool  # True when at least MIN_OVERLAP_SQUARE_METRES of the drawn area lies inside the site


class UnknownSiteError(LookupError):
    """A site number that is not in the register."""

    def __init__(self, number: str) -> None:
        super().__init__(f"The Natura 2000 site {number!r} is not in the register")
        self.number = number


class ProtectedSites(Protocol):
    """Adapter interface for the register of Natura 2000 sites and their boundaries."""

    def find(self, number: str) -> Natura2000Site | None: ...

    def sites(self) -> list[Natura2000Site]: ...

    def suggest(self, text: str, limit: int = 3) -> list[Natura2000Site]: ...

    def overlap(self, geometry: dict[str, Any], number: str) -> Overlap: ...


class OfflineNatura2000Sites:
    """ProtectedSites backed by the simplified outlines in engine/adapters/data/natura2000_sites.geojson."""

    def __init__(self, path: Path | None = None) -> None:
        """Load and validate the dataset at ``path``, or the shipped dataset when None.

        Raises ValueError naming the file and the feature of the first problem.
        """
        if path is None:
            source = "natura2000_sites.geojson"
            text = (resources.files("engine.adapters") / "data" / source).read_text(encoding="utf-8")
        else:
            source = str(path)
            text = path.read_text(encoding="utf-8")

        self._sites = _parse_sites(text, source)
        self._by_number = {site.number: site for site in self._sites}

    def __len__(self) -> int:
        return len(self._sites)

    def sites(self) -> list[Natura2000Site]:
        """Return all sites in file order."""
        return list(self._sites)

    def find(self, number: str) -> Natura2000Site | None:
        """Return the site with this number, accepting "N1", "n1", " N1 " and "N 01" alike."""
        canonical = normalise_site_number(number)
        return self._by_number.get(canonical) if canonical else None

    def suggest(self, text: str, limit: int = 3) -> list[Natura2000Site]:
        """Return up to ``limit`` sites that ``text`` may have meant, best first.

        A known number among the digits of ``text`` ranks first ("1" or "nr. 1" suggests N1).
        Then come sites whose name contains ``text``, and then sites whose name is similar
        to it by difflib's ratio, at or above SUGGESTION_CUTOFF.
        """
        query = " ".join(text.split()).casefold()
        if not query or limit <= 0:
            return []

        found: list[Natura2000Site] = []
        for digits in _DIGITS.findall(query):
            site = self._by_number.get(f"N{int(digits)}") if len(digits) <= 3 and int(digits) > 0 else None
            if site is not None and site not in found:
                found.append(site)

        scored: list[tuple[float, str, Natura2000Site]] = []
        matcher = difflib.SequenceMatcher()
        matcher.set_seq2(query)
        for site in self._sites:
            name = site.name.casefold()
            if len(query) >= 3 and query in name:
                score = 2.0  # a part of the name ranks above any similarity ratio
            else:
                matcher.set_seq1(name)
                score = matcher.ratio()
            if score >= SUGGESTION_CUTOFF:
                scored.append((score, site.number, site))
        scored.sort(key=lambda item: (-item[0], item[1]))

        for _, _, site in scored:
            if site not in found:
                found.append(site)
        return found[:limit]

    def overlap(self, geometry: dict[str, Any], number: str) -> Overlap:
        """Measure how much of a WGS84 GeoJSON Polygon or MultiPolygon lies inside a site.

        Both areas are measured in UTM zone 32N. Raises UnknownSiteError for an unknown
        number and ValueError for a geometry that is empty or invalid.
        """
        site = self.find(number)
        if site is None:
            raise UnknownSiteError(number)

        drawn = project_to_utm32(shapely.geometry.shape(geometry))
        if drawn.is_empty or not drawn.is_valid or drawn.area <= 0:
            reason = shapely.validation.explain_validity(drawn) if not drawn.is_empty else "empty geometry"
            raise ValueError(f"The drawn area cannot be measured: {reason}")

        inside = drawn.intersection(site.projected)
        share = min(inside.area / drawn.area * 100, 100.0)
        return Overlap(
            site_number=site.number,
            drawn_ha=hectares(drawn.area),
            inside_ha=hectares(inside.area),
            share_percent=Decimal(repr(share)).quantize(_HECTARE),
            intersects=inside.area >= MIN_OVERLAP_SQUARE_METRES,
        )


def _parse_sites(text: str, source: str) -> list[Natura2000Site]:
    """Parse and validate the GeoJSON FeatureCollection of sites.

    Raises ValueError naming ``source`` and the feature (by position and number) at fault.
    """
    try:
        collection = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: not valid JSON ({error})") from None
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise ValueError(f"{source}: expected a GeoJSON FeatureCollection")
    features = collection.get("features")
    if not isinstance(features, list) or not features:
        raise ValueError(f"{source}: the FeatureCollection has no features")

    sites: list[Natura2000Site] = []
    first_index: dict[str, int] = {}
    for index, feature in enumerate(features, start=1):
        site = _parse_feature(feature, f"{source}, feature {index}")
        if site.number in first_index:
            raise ValueError(
                f"{source}, feature {index}: duplicate site number {site.number}, "
                f"first given in feature {first_index[site.number]}"
            )
        first_index[site.number] = index
        sites.append(site)
    return sites


def _parse_feature(feature: Any, location: str) -> Natura2000Site:
    """Build a site from one GeoJSON Feature, raising ValueError prefixed with ``location``."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ValueError(f"{location}: expected a GeoJSON Feature")
    properties = feature.get("properties")
    if not isinstance(properties, dict):
        raise ValueError(f"{location}: the feature has no properties")

    number = properties.get("number")
    if not isinstance(number, str) or not _CANONICAL_NUMBER.fullmatch(number):
        raise ValueError(f"{location}: invalid site number {number!r}. Expected N followed by 1 to 3 digits")
    location = f"{location} ({number})"
    name = properties.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{location}: the name is missing")
    simplified = properties.get("simplified")
    if not isinstance(simplified, bool):
        raise ValueError(f"{location}: 'simplified' must be true or false, not {simplified!r}")

    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"{location}: the geometry must be a Polygon or MultiPolygon")
    try:
        boundary = shapely.geometry.shape(geometry)
    except (ValueError, TypeError, AttributeError, shapely.errors.ShapelyError) as error:
        raise ValueError(f"{location}: the geometry cannot be read ({error})") from None
    if boundary.is_empty or not boundary.is_valid:
        reason = shapely.validation.explain_validity(boundary) if not boundary.is_empty else "empty"
        raise ValueError(f"{location}: invalid geometry ({reason})")
    west, south, east, north = boundary.bounds
    if west < DENMARK_WEST or east > DENMARK_EAST or south < DENMARK_SOUTH or north > DENMARK_NORTH:
        raise ValueError(f"{location}: the boundary {boundary.bounds} reaches outside Denmark")

    return Natura2000Site(
        number=number,
        name=" ".join(name.split()),
        simplified=simplified,
        boundary=boundary,
        projected=project_to_utm32(boundary),
    )
