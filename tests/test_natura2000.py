"""Natura 2000 sites: the offline dataset, the `natura2000_site` field type and the `natura2000_overlap` action."""

from __future__ import annotations

import dataclasses
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import shapely.geometry
from pyproj import Geod, Transformer

from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MemoryDigitalPost
from engine.adapters.natura2000 import (
    DENMARK_EAST,
    DENMARK_NORTH,
    DENMARK_SOUTH,
    DENMARK_WEST,
    OfflineNatura2000Sites,
    UnknownSiteError,
    normalise_site_number,
)
from engine.adapters.species import OfflineSpeciesPlus
from engine.auth import Actor
from engine.definitions.fields import FIELD_TYPES, FieldValueError
from engine.definitions.loader import LoadedDefinitions, load_definitions
from engine.definitions.model import FieldDef, Label
from engine.errors import InvalidInput
from engine.runtime.services import Services
from engine.service import Sagsflow
from engine.storage.database import Database
from tests.helpers import CASEWORKER, REPOSITORY

DATASET = REPOSITORY / "engine" / "adapters" / "data" / "natura2000_sites.geojson"
ROUND = REPOSITORY / "examples" / "natura2000" / "round-2027.json"
SITES = OfflineNatura2000Sites()

TO_WGS84 = Transformer.from_crs("EPSG:25832", "EPSG:4326", always_xy=True)
# A point in central Jutland, in metres in ETRS89 / UTM zone 32N (about 9.0 E, 56.2 N).
EAST, NORTH = 500_000.0, 6_230_000.0


def utm_square(west: float, south: float, width: float, height: float | None = None) -> dict[str, Any]:
    """A rectangle drawn in UTM zone 32N, `west`/`south` metres from (EAST, NORTH), as a WGS84 GeoJSON Polygon."""
    height = width if height is None else height
    corners = [(west, south), (west + width, south), (west + width, south + height), (west, south + height)]
    ring = [list(TO_WGS84.transform(EAST + x, NORTH + y)) for x, y in corners]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


@pytest.fixture(scope="module")
def square_sites(tmp_path_factory: pytest.TempPathFactory) -> OfflineNatura2000Sites:
    """A register with one test site: a square of 1,000 m by 1,000 m (exactly 100 ha) in UTM zone 32N."""
    feature = {
        "type": "Feature",
        "properties": {"number": "N250", "name": "Testkvadratet", "simplified": True},
        "geometry": utm_square(0, 0, 1000),
    }
    path = tmp_path_factory.mktemp("sites") / "square.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}), encoding="utf-8")
    return OfflineNatura2000Sites(path)


# The dataset ------------------------------------------------------------------------------------


def test_dataset_has_at_least_twenty_sites() -> None:
    assert len(SITES) >= 20


def test_dataset_numbers_are_unique_and_canonical() -> None:
    numbers = [site.number for site in SITES.sites()]

    assert len(set(numbers)) == len(numbers)
    assert all(normalise_site_number(number) == number for number in numbers)


def test_every_feature_marked_simplified() -> None:
    collection = json.loads(DATASET.read_text(encoding="utf-8"))

    assert [feature["properties"]["simplified"] for feature in collection["features"]] == [True] * len(SITES)
    assert all(site.simplified for site in SITES.sites())


def test_every_boundary_is_valid_and_inside_denmark() -> None:
    for site in SITES.sites():
        west, south, east, north = site.boundary.bounds

        assert site.boundary.is_valid, site.number
        assert site.boundary.geom_type == "Polygon", site.number
        assert DENMARK_WEST <= west < east <= DENMARK_EAST, site.number
        assert DENMARK_SOUTH <= south < north <= DENMARK_NORTH, site.number


def test_site_boundaries_do_not_overlap() -> None:
    sites = SITES.sites()
    overlapping = [
        (first.number, second.number)
        for index, first in enumerate(sites)
        for second in sites[index + 1 :]
        if first.boundary.intersects(second.boundary)
    ]

    assert overlapping == []


def test_dataset_loads_from_path() -> None:
    assert [site.number for site in OfflineNatura2000Sites(DATASET).sites()] == [site.number for site in SITES.sites()]


def test_site_area_is_measured_in_utm32() -> None:
    # Near UTM zone 32N's central meridian (9° E) the projected area is within 0.1 % of the
    # area on the GRS80 ellipsoid, which ETRS89 uses.
    site = SITES.find("N57")
    assert site is not None
    geodesic_area, _ = Geod(ellps="GRS80").geometry_area_perimeter(site.boundary)

    assert abs(float(site.area_ha) * 10_000 / abs(geodesic_area) - 1) < 0.001


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"number": "n1"}, r"feature 1: invalid site number 'n1'"),
        ({"number": "N1", "name": " "}, r"feature 1 \(N1\): the name is missing"),
        ({"number": "N1", "simplified": "yes"}, r"'simplified' must be true or false, not 'yes'"),
    ],
)
def test_dataset_rejects_bad_properties(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    properties = {"number": "N1", "name": "Skagens Gren og Skagerak", "simplified": True, **change}
    feature = {"type": "Feature", "properties": properties, "geometry": utm_square(0, 0, 100)}
    path = tmp_path / "sites.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}), encoding="utf-8")

    with pytest.raises(ValueError, match=message):
        OfflineNatura2000Sites(path)


def test_dataset_rejects_duplicate_number(tmp_path: Path) -> None:
    feature = {
        "type": "Feature",
        "properties": {"number": "N1", "name": "Skagens Gren og Skagerak", "simplified": True},
        "geometry": utm_square(0, 0, 100),
    }
    path = tmp_path / "sites.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature, feature]}), encoding="utf-8")

    with pytest.raises(ValueError, match=r"feature 2: duplicate site number N1, first given in feature 1"):
        OfflineNatura2000Sites(path)


def test_dataset_rejects_bad_boundary(tmp_path: Path) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[9.5, 56.17], [9.52, 56.18], [9.52, 56.17], [9.5, 56.18], [9.5, 56.17]]],
    }
    berlin = {"type": "Polygon", "coordinates": [[[13.3, 52.5], [13.4, 52.5], [13.4, 52.6], [13.3, 52.5]]]}
    path = tmp_path / "sites.geojson"

    for geometry, message in ((bowtie, r"invalid geometry \(Self-intersection"), (berlin, "outside Denmark")):
        feature = {
            "type": "Feature",
            "properties": {"number": "N9", "name": "X", "simplified": True},
            "geometry": geometry,
        }
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}), encoding="utf-8")

        with pytest.raises(ValueError, match=message):
            OfflineNatura2000Sites(path)


# Lookup -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["N1", "n1", " N1 ", "N 01", "n001"])
def test_find_accepts_number_variants(text: str) -> None:
    site = SITES.find(text)

    assert site is not None
    assert site.number == "N1"
    assert site.name == "Skagens Gren og Skagerak"
    assert site.label == "N1 Skagens Gren og Skagerak"


@pytest.mark.parametrize("text", ["N3", "N0", "N1000", "1", "Skagen", "", "NN1"])
def test_find_unknown_or_malformed_number(text: str) -> None:
    assert SITES.find(text) is None


def test_real_site_names_are_kept() -> None:
    names = {site.number: site.name for site in SITES.sites()}

    assert names["N12"] == "Store Vildmose"
    assert names["N18"] == "Rold Skov, Lindenborg Ådal og Madum Sø"
    assert names["N89"] == "Vadehavet"
    assert names["N186"] == "Almindingen, Ølene og Paradisbakkerne"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Skagen", ["N1"]),
        ("stor vildmose", ["N12"]),
        ("Vejlerne", ["N16"]),
        ("57", ["N57"]),
        ("nr. 18", ["N18"]),
        ("Timbuktu", []),
    ],
)
def test_suggest_by_name_or_number(text: str, expected: list[str]) -> None:
    assert [site.number for site in SITES.suggest(text)][: len(expected) or None] == expected


# Overlap with known areas -----------------------------------------------------------------------


def test_square_inside_site(square_sites: OfflineNatura2000Sites) -> None:
    overlap = square_sites.overlap(utm_square(300, 300, 400), "N250")

    assert overlap.drawn_ha == Decimal("16.00")
    assert overlap.inside_ha == Decimal("16.00")
    assert overlap.share_percent == Decimal("100.00")
    assert overlap.intersects


def test_square_partly_inside_site(square_sites: OfflineNatura2000Sites) -> None:
    # 1,000 m by 1,000 m moved 250 m east: 750 m by 1,000 m lies inside.
    overlap = square_sites.overlap(utm_square(250, 0, 1000), "n250")

    assert overlap.site_number == "N250"
    assert overlap.drawn_ha == Decimal("100.00")
    assert overlap.inside_ha == Decimal("75.00")
    assert overlap.share_percent == Decimal("75.00")


def test_rectangle_with_odd_overlap(square_sites: OfflineNatura2000Sites) -> None:
    # 123.4 m by 567.8 m, of which 23.4 m by 567.8 m lies inside: 1.328652 ha of 7.006652 ha.
    overlap = square_sites.overlap(utm_square(-100, 200, 123.4, 567.8), "N250")

    assert overlap.drawn_ha == Decimal("7.01")
    assert overlap.inside_ha == Decimal("1.33")
    assert overlap.share_percent == Decimal("18.96")


def test_square_outside_site(square_sites: OfflineNatura2000Sites) -> None:
    overlap = square_sites.overlap(utm_square(1500, 0, 200), "N250")

    assert overlap.inside_ha == Decimal("0.00")
    assert overlap.share_percent == Decimal("0.00")
    assert not overlap.intersects


def test_square_sharing_a_border_is_outside(square_sites: OfflineNatura2000Sites) -> None:
    overlap = square_sites.overlap(utm_square(1000, 0, 500), "N250")

    assert overlap.inside_ha == Decimal("0.00")
    assert not overlap.intersects


def test_multipolygon_overlap(square_sites: OfflineNatura2000Sites) -> None:
    inside, outside = utm_square(100, 100, 300), utm_square(2000, 0, 300)
    multipolygon = {"type": "MultiPolygon", "coordinates": [inside["coordinates"], outside["coordinates"]]}

    overlap = square_sites.overlap(multipolygon, "N250")

    assert overlap.drawn_ha == Decimal("18.00")
    assert overlap.inside_ha == Decimal("9.00")
    assert overlap.share_percent == Decimal("50.00")


def test_overlap_with_unknown_site_raises(square_sites: OfflineNatura2000Sites) -> None:
    with pytest.raises(UnknownSiteError, match="'N1' is not in the register"):
        square_sites.overlap(utm_square(0, 0, 100), "N1")


def test_overlap_with_real_site() -> None:
    site = SITES.find("N57")
    assert site is not None
    middle = site.boundary.representative_point()
    area = shapely.geometry.mapping(middle.buffer(0.002))

    overlap = SITES.overlap(area, "N57")

    assert overlap.share_percent == Decimal("100.00")
    assert overlap.inside_ha == overlap.drawn_ha


# The field type ---------------------------------------------------------------------------------


# The registers that field types consult, as the running engine has them.
LOOKUPS = Services(
    species=OfflineSpeciesPlus(),
    companies=FakeCompanyRegister(),
    digital_post=MemoryDigitalPost(),
    protected_sites=SITES,
)


def parse_site(raw: Any) -> Any:
    field = FieldDef(type="natura2000_site", label=Label(da="Område", en="Site"))
    return FIELD_TYPES["natura2000_site"].parse(raw, field, LOOKUPS)


@pytest.mark.parametrize("raw", ["N1", "n1", " N1 ", "N 01"])
def test_site_field_normalises_number(raw: str) -> None:
    assert parse_site(raw) == "N1"


def test_site_field_rejects_unknown_number() -> None:
    with pytest.raises(FieldValueError) as raised:
        parse_site("N3")

    error = raised.value
    assert error.code == "unknown_natura2000_site"
    assert error.text.da == "Natura 2000-området N3 findes ikke i registret over Natura 2000-områder."
    assert error.text.en == "The Natura 2000 site N3 is not in the register of Natura 2000 sites."
    assert error.hint is not None
    assert "N1 for Skagens Gren og Skagerak" in error.hint.en


def test_site_field_suggests_site_for_name() -> None:
    with pytest.raises(FieldValueError) as raised:
        parse_site("Store Vildmose")

    error = raised.value
    assert error.code == "invalid_value"
    assert error.text.en == "'Store Vildmose' is not the number of a Natura 2000 site."
    assert error.hint is not None
    assert error.hint.da == "Mente du: N12 Store Vildmose?"
    assert error.hint.en == "Did you mean: N12 Store Vildmose?"


def test_site_field_suggests_site_for_bare_number() -> None:
    with pytest.raises(FieldValueError) as raised:
        parse_site("18")

    assert raised.value.hint is not None
    assert raised.value.hint.en == "Did you mean: N18 Rold Skov, Lindenborg Ådal og Madum Sø?"


@pytest.mark.parametrize(("raw", "message"), [("", "Must not be empty."), (1, "Must be text, not 1.")])
def test_site_field_rejects_empty_and_non_text(raw: Any, message: str) -> None:
    with pytest.raises(FieldValueError) as raised:
        parse_site(raw)

    assert raised.value.text.en == message


# Geometry input ---------------------------------------------------------------------------------


def parse_area(raw: Any) -> Any:
    field = FieldDef(type="geometry", label=Label(da="Areal", en="Area"))
    return FIELD_TYPES["geometry"].parse(raw, field, LOOKUPS)


def test_bowtie_is_rejected_with_place_of_crossing() -> None:
    bowtie = [[[9.5, 56.17], [9.52, 56.18], [9.52, 56.17], [9.5, 56.18], [9.5, 56.17]]]

    with pytest.raises(FieldValueError) as raised:
        parse_area({"type": "Polygon", "coordinates": bowtie})

    error = raised.value
    assert error.code == "invalid_geometry"
    assert error.text.da == ("Fladen er ugyldig: kanterne krydser hinanden ved længdegrad 9.51, breddegrad 56.175.")
    assert error.text.en == (
        "The area is invalid (Self-intersection): its edges cross each other at longitude 9.51, latitude 56.175."
    )


def test_unclosed_ring_is_rejected() -> None:
    ring = [[9.5, 56.17], [9.52, 56.17], [9.52, 56.18], [9.5, 56.18]]

    with pytest.raises(FieldValueError) as raised:
        parse_area({"type": "Polygon", "coordinates": [ring]})

    assert raised.value.text.en == (
        "The outer ring is not closed: the last point [9.5, 56.18] differs from the first [9.5, 56.17]."
    )
    assert raised.value.hint is not None
    assert raised.value.hint.en == "Repeat the first point as the last point of the ring."


def test_ring_with_too_few_points_is_rejected() -> None:
    with pytest.raises(FieldValueError) as raised:
        parse_area({"type": "Polygon", "coordinates": [[[9.5, 56.17], [9.52, 56.17], [9.5, 56.17]]]})

    assert raised.value.text.en == (
        "The outer ring is not closed: it has only 3 points, and a closed ring needs at least four, the last "
        "equal to the first."
    )


def test_hole_in_second_polygon_is_named() -> None:
    outer = [[9.5, 56.17], [9.52, 56.17], [9.52, 56.18], [9.5, 56.18], [9.5, 56.17]]
    open_hole = [[9.505, 56.172], [9.51, 56.172], [9.51, 56.175], [9.505, 56.175]]
    other = [[9.6, 56.17], [9.62, 56.17], [9.62, 56.18], [9.6, 56.18], [9.6, 56.17]]

    with pytest.raises(FieldValueError) as raised:
        parse_area({"type": "MultiPolygon", "coordinates": [[other], [outer, open_hole]]})

    assert raised.value.text.en.startswith("Hole 1 of polygon 2 is not closed")


def test_hole_outside_shell_is_explained() -> None:
    outer = [[9.5, 56.17], [9.52, 56.17], [9.52, 56.18], [9.5, 56.18], [9.5, 56.17]]
    hole = [[9.6, 56.17], [9.61, 56.17], [9.61, 56.175], [9.6, 56.17]]

    with pytest.raises(FieldValueError) as raised:
        parse_area({"type": "Polygon", "coordinates": [outer, hole]})

    assert raised.value.text.da.startswith("Fladen er ugyldig: et hul ligger uden for")
    assert "at longitude 9.6, latitude 56.17" in raised.value.text.en


@pytest.mark.parametrize(
    ("position", "message"),
    [
        ([200, 56.17], "The point [200, 56.17] is outside WGS84: the longitude must be between -180 and 180"),
        ([9.5, -91], "The point [9.5, -91] is outside WGS84"),
        ([531_000, 6_225_000], "The point [531000, 6225000] is outside WGS84"),
        ([9.5], "[9.5] is not a point in WGS84: a point is written [longitude, latitude] with two numbers."),
        ([9.5, True], "[9.5, True] is not a point in WGS84"),
    ],
)
def test_position_outside_wgs84_is_rejected(position: list[Any], message: str) -> None:
    ring = [[9.5, 56.17], position, [9.52, 56.18], [9.5, 56.17]]

    with pytest.raises(FieldValueError) as raised:
        parse_area({"type": "Polygon", "coordinates": [ring]})

    assert raised.value.text.en.startswith(message)


def test_utm_coordinates_get_a_hint() -> None:
    ring = [[531_000, 6_225_000], [532_000, 6_225_000], [532_000, 6_226_000], [531_000, 6_225_000]]

    with pytest.raises(FieldValueError) as raised:
        parse_area({"type": "Polygon", "coordinates": [ring]})

    assert raised.value.hint is not None
    assert "not in metres (such as UTM)" in raised.value.hint.en


@pytest.mark.parametrize(
    "ring",
    [
        # Latitude and longitude swapped: a point in the Indian Ocean.
        [[56.17, 9.5], [56.17, 9.52], [56.18, 9.52], [56.17, 9.5]],
        # Stockholm.
        [[18.0, 59.3], [18.1, 59.3], [18.1, 59.4], [18.0, 59.3]],
    ],
)
def test_area_outside_denmark_is_rejected(ring: list[list[float]]) -> None:
    with pytest.raises(FieldValueError) as raised:
        parse_area({"type": "Polygon", "coordinates": [ring]})

    assert raised.value.text.en == f"The point {ring[0]} lies outside Denmark."


# The action in a process ------------------------------------------------------------------------

# The application fields are those of processes/tilskud/natura2000-sammenhaengende-arealer.yaml,
# without its pool case, so that the overlap step can be tested on its own.
PROCESS = """
process: test-natura2000
extends: tilskud
title: {da: Test Natura 2000, en: Test Natura 2000}
legal_basis: [{title: {da: Testlov, en: Test act}, reference: "§ 1"}]
classification: "02.01.01"
fields:
  natura2000_site:
    type: natura2000_site
    label: {da: Natura 2000-område, en: Natura 2000 site}
    required: true
  current_use:
    type: enum
    label: {da: Arealets nuværende anvendelse, en: Current use of the area}
    options:
      - {value: grazing, label: {da: Afgræsning, en: Grazing}}
      - {value: haymaking, label: {da: Høslæt, en: Haymaking}}
      - {value: arable, label: {da: Omdrift, en: Arable rotation}}
      - {value: unmanaged, label: {da: Ingen drift, en: Not managed}}
  planned_management:
    type: enum
    label: {da: Planlagt drift, en: Planned management}
    options:
      - {value: grazing, label: {da: Helårsgræsning, en: Year-round grazing}}
      - {value: seasonal_grazing, label: {da: Sæsongræsning, en: Seasonal grazing}}
      - {value: haymaking, label: {da: Høslæt, en: Haymaking}}
  landowners_agree:
    type: boolean
    label: {da: Alle ejere af arealet står bag ansøgningen, en: Every owner of the area supports the application}
  natura2000_inside_ha:
    type: decimal
    source: system
    label: {da: Areal i Natura 2000-området (ha), en: Area inside the Natura 2000 site (ha)}
  natura2000_share:
    type: decimal
    source: system
    label: {da: Andel i Natura 2000-området (%), en: Share inside the Natura 2000 site (%)}
steps:
  - insert_after: area_measurement
    step:
      id: site_overlap
      kind: action
      action: natura2000_overlap
      label: {da: Beregn overlap med Natura 2000-området, en: Measure the overlap with the Natura 2000 site}
      params:
        field: area
        site_field: natura2000_site
        inside_field: natura2000_inside_ha
        share_field: natura2000_share
"""
APPLICANT = Actor("kongerslev", frozenset({"applicant"}))


def load_process(root: Path, text: str) -> LoadedDefinitions:
    shutil.copytree(REPOSITORY / "skeletons", root / "skeletons")
    path = root / "processes" / "tilskud" / "test-natura2000.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return load_definitions(root)


def deploy(root: Path, database: Database, services: Services) -> Sagsflow:
    loaded = load_process(root, PROCESS)
    assert [problem.format("en") for problem in loaded.problems] == []
    engine = Sagsflow(database, services)
    engine.deploy(loaded, "test")
    return engine


@pytest.fixture
def engine(tmp_path: Path, database: Database, services: Services) -> Sagsflow:
    return deploy(tmp_path / "definitions", database, services)


@pytest.fixture
def square_engine(
    tmp_path: Path, database: Database, services: Services, square_sites: OfflineNatura2000Sites
) -> Sagsflow:
    return deploy(tmp_path / "definitions", database, dataclasses.replace(services, protected_sites=square_sites))


def load_round() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(ROUND.read_text(encoding="utf-8"))
    return loaded


def application(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = dict(load_round()["applications"][0]["data"])
    data.update(changes)
    return data


def overlap_row(case: dict[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [row for row in case["checklist"] if row["step"] == "site_overlap"]
    return rows[-1]


def test_action_measures_area_inside_site(engine: Sagsflow) -> None:
    case = engine.submit(APPLICANT, "test-natura2000", application(natura2000_site=" n17 "), "da")
    case = engine.get_case(CASEWORKER, case["id"], "da")

    assert case["data"]["natura2000_site"] == "N17"
    assert case["data"]["natura2000_inside_ha"] == case["data"]["area_ha"] == "45.80"
    assert case["data"]["natura2000_share"] == "100.00"
    assert overlap_row(case)["outcome"] == "inside"


@pytest.mark.parametrize(
    ("west", "outcome", "inside_ha", "share"),
    [
        (0, "inside", "100.00", "100.00"),
        (5, "inside", "99.50", "99.50"),
        (6, "partly_inside", "99.40", "99.40"),
        (600, "partly_inside", "40.00", "40.00"),
        (1000, "outside", "0.00", "0.00"),
    ],
)
def test_action_outcome_by_share(
    square_engine: Sagsflow, west: float, outcome: str, inside_ha: str, share: str
) -> None:
    data = application(area=utm_square(west, 0, 1000), natura2000_site="N250")

    case = square_engine.submit(APPLICANT, "test-natura2000", data, "da")
    case = square_engine.get_case(CASEWORKER, case["id"], "da")

    assert overlap_row(case)["outcome"] == outcome
    assert case["data"]["natura2000_inside_ha"] == inside_ha
    assert case["data"]["natura2000_share"] == share


def test_action_without_site_is_not_applicable(tmp_path: Path, database: Database, services: Services) -> None:
    required_site = "    label: {da: Natura 2000-område, en: Natura 2000 site}\n    required: true\n"
    assert PROCESS.count(required_site) == 1
    text = PROCESS.replace(required_site, "    label: {da: Natura 2000-område, en: Natura 2000 site}\n")
    loaded = load_process(tmp_path / "definitions", text)
    assert [problem.format("en") for problem in loaded.problems] == []
    engine = Sagsflow(database, services)
    engine.deploy(loaded, "test")
    data = application()
    del data["natura2000_site"]

    case = engine.submit(APPLICANT, "test-natura2000", data, "da")
    case = engine.get_case(CASEWORKER, case["id"], "da")

    assert overlap_row(case)["outcome"] == "not_applicable"
    assert "natura2000_inside_ha" not in case["data"]


def test_unknown_site_rejected_at_submission(engine: Sagsflow) -> None:
    with pytest.raises(InvalidInput) as raised:
        engine.submit(APPLICANT, "test-natura2000", application(natura2000_site="Lille Vildmose"), "da")

    errors = {error.field: error for error in raised.value.errors}
    assert errors["data.natura2000_site"].text.da == (
        "Natura 2000-område (natura2000_site): 'Lille Vildmose' er ikke et nummer på et Natura 2000-område."
    )
    hint = errors["data.natura2000_site"].hint
    assert hint is not None
    assert hint.en == "Did you mean: N17 Lille Vildmose, Tofte Skov og Høstemark Skov, N12 Store Vildmose?"


def test_action_params_are_checked(tmp_path: Path) -> None:
    text = PROCESS.replace("site_field: natura2000_site", "site_field: project_title")

    problems = [problem.format("en") for problem in load_process(tmp_path, text).problems]

    assert len(problems) == 1
    assert "SF309" in problems[0]
    assert "'site_field' must name a field of type natura2000_site, but 'project_title' has type 'text'" in problems[0]


REVIEW_STEP = """\
  - insert_after: completeness_check
    step:
      id: overlap_review
      kind: task
      role: caseworker
      when: "{guard}"
      label: {{da: Vurdér arealet uden for området, en: Assess the area outside the site}}
"""


def test_guard_on_overlap_outcome(tmp_path: Path) -> None:
    valid = PROCESS + REVIEW_STEP.format(guard="outcome.site_overlap in ['partly_inside', 'outside']")
    impossible = PROCESS + REVIEW_STEP.format(guard="outcome.site_overlap == 'partly'")

    assert [problem.format("en") for problem in load_process(tmp_path / "valid", valid).problems] == []
    assert [problem.code for problem in load_process(tmp_path / "impossible", impossible).problems] == ["SF332"]


def test_guard_compares_site_with_text(tmp_path: Path) -> None:
    number = PROCESS + REVIEW_STEP.format(guard="natura2000_site == 1")

    assert [problem.code for problem in load_process(tmp_path, number).problems] == ["SF332"]


# The example round ------------------------------------------------------------------------------


def test_round_size_and_references() -> None:
    round_ = load_round()

    assert round_["scheme"] == "Tilskud til sammenhængende arealer i Natura 2000"
    assert 8 <= len(round_["applications"]) <= 12
    assert len({entry["reference"] for entry in round_["applications"]}) == len(round_["applications"])


def test_round_notes_outside_and_invalid() -> None:
    noted = {entry["reference"]: entry for entry in load_round()["applications"] if "note" in entry}

    expected = {entry.get("expected_overlap") or entry.get("expected_error") for entry in noted.values()}
    assert {"outside", "invalid_geometry"} <= expected


def test_round_co_applicant_shares_add_up() -> None:
    for entry in load_round()["applications"]:
        parties = entry["data"]["co_applicants"]

        assert sum(Decimal(str(party["share"])) for party in parties) == 100, entry["reference"]
        assert parties[0]["cvr"] == entry["data"]["applicant_cvr"], entry["reference"]


def test_round_values_pass_field_types(tmp_path: Path) -> None:
    process = load_process(tmp_path, PROCESS).compiled["test-natura2000"]

    for entry in load_round()["applications"]:
        rejected = {}
        for name, value in entry["data"].items():
            try:
                process.field_types[name].parse(value, process.fields[name], LOOKUPS)
            except FieldValueError as error:
                rejected[name] = error.code

        expected = {"area": entry["expected_error"]} if "expected_error" in entry else {}
        assert rejected == expected, entry["reference"]


def test_round_areas_lie_in_their_sites() -> None:
    for entry in load_round()["applications"]:
        if "expected_overlap" not in entry:
            continue
        data = entry["data"]
        overlap = SITES.overlap(data["area"], data["natura2000_site"])

        if entry["expected_overlap"] == "inside":
            assert overlap.share_percent == Decimal("100.00"), entry["reference"]
        elif entry["expected_overlap"] == "partly_inside":
            assert Decimal(50) < overlap.share_percent < Decimal("99.5"), entry["reference"]
        else:
            assert not overlap.intersects, entry["reference"]


def test_round_runs_through_the_engine(engine: Sagsflow) -> None:
    for entry in load_round()["applications"]:
        if "expected_error" in entry:
            with pytest.raises(InvalidInput) as raised:
                engine.submit(APPLICANT, "test-natura2000", entry["data"], entry["language"])
            assert [error.code for error in raised.value.errors] == [entry["expected_error"]], entry["reference"]
            continue

        case = engine.submit(APPLICANT, "test-natura2000", entry["data"], entry["language"])
        case = engine.get_case(CASEWORKER, case["id"], "da")

        assert overlap_row(case)["outcome"] == entry["expected_overlap"], entry["reference"]
