"""Field types that check structure: drawn areas (GeoJSON) and several applicants."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.actions import area_in_hectares
from engine.adapters.klap import OfflineKlapRegister
from engine.adapters.natura2000 import OfflineNatura2000Sites
from engine.adapters.species import OfflineSpeciesPlus
from engine.definitions.fields import FIELD_TYPES, FieldValueError
from engine.definitions.model import FieldDef, Label


class Lookups:
    species = OfflineSpeciesPlus()
    protected_sites = OfflineNatura2000Sites()
    klap = OfflineKlapRegister()


def field(type_name: str, **options: Any) -> FieldDef:
    return FieldDef(type=type_name, label=Label(da="Felt", en="Field"), **options)


def parse(type_name: str, raw: Any, **options: Any) -> Any:
    return FIELD_TYPES[type_name].parse(raw, field(type_name, **options), Lookups())


SQUARE = [[[9.50, 56.17], [9.52, 56.17], [9.52, 56.18], [9.50, 56.18], [9.50, 56.17]]]


def test_polygon_is_accepted() -> None:
    assert parse("geometry", {"type": "Polygon", "coordinates": SQUARE}) == {"type": "Polygon", "coordinates": SQUARE}


def test_feature_is_unwrapped() -> None:
    feature = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": SQUARE}}

    assert parse("geometry", feature)["type"] == "Polygon"


def test_multipolygon_is_accepted() -> None:
    assert parse("geometry", {"type": "MultiPolygon", "coordinates": [SQUARE]})["type"] == "MultiPolygon"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "Point", "coordinates": [9.5, 56.1]}, "Polygon eller MultiPolygon"),
        ({"type": "Polygon", "coordinates": [[[9.5, 56.17], [200, 56.17], [9.52, 56.18], [9.5, 56.17]]]}, "WGS84"),
        ({"type": "Polygon", "coordinates": [[[9.5, 56.17], [9.52, 56.17], [9.5, 56.17]]]}, "ikke lukket"),
        (
            {"type": "Polygon", "coordinates": [[[9.5, 56.17], [9.52, 56.17], [9.52, 56.18], [9.5, 56.18]]]},
            "ikke lukket",
        ),
        (
            {"type": "Polygon", "coordinates": [[[56.17, 9.5], [56.17, 9.52], [56.18, 9.52], [56.17, 9.5]]]},
            "uden for Danmark",
        ),
        (
            {"type": "Polygon", "coordinates": [[[179.9, 10], [-179.9, 10], [-179.9, 11], [179.9, 10]]]},
            "uden for Danmark",
        ),
        ({"type": "Polygon", "coordinates": "nope"}, "GeoJSON"),
        ({"type": "Polygon", "coordinates": [[[9.5, 56.17], ["a", 56.17], [9.52, 56.18], [9.5, 56.17]]]}, "WGS84"),
        ("Polygon", "Polygon eller MultiPolygon"),
    ],
)
def test_bad_geometry_is_refused(raw: Any, expected: str) -> None:
    with pytest.raises(FieldValueError) as raised:
        parse("geometry", raw)

    assert expected in raised.value.text.da


def test_self_intersection_names_the_reason() -> None:
    bowtie = [[[9.5, 56.17], [9.52, 56.18], [9.52, 56.17], [9.5, 56.18], [9.5, 56.17]]]

    with pytest.raises(FieldValueError) as raised:
        parse("geometry", {"type": "Polygon", "coordinates": bowtie})

    assert raised.value.code == "invalid_geometry"
    assert "Self-intersection" in raised.value.text.en


def test_area_in_hectares_uses_utm32() -> None:
    # 0.02 degrees of longitude and 0.01 of latitude at 56.17 N: about 1,241 m by 1,113 m.
    area = area_in_hectares({"type": "Polygon", "coordinates": SQUARE})

    assert Decimal("137") < area < Decimal("140")


def test_parties_with_shares() -> None:
    parties = parse(
        "parties",
        [{"name": "A", "cvr": "91312220", "share": "60"}, {"name": "B", "cpr": "010190-1234", "share": 40}],
    )

    assert parties == [
        {"name": "A", "cvr": "91312220", "share": "60"},
        {"name": "B", "cpr": "010190-1234", "share": "40"},
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], "mindst én part"),
        ([{"name": "A"}], "CVR- eller CPR-nummer"),
        ([{"name": "A", "cvr": "91312220"}, {"name": "B", "cvr": "91312220"}], "to gange"),
        ([{"name": "A", "cvr": "91312220", "share": 50}], "100 procent"),
        ([{"name": "A", "cvr": "91312220", "role": "owner"}], "ukendte felter role"),
        ([{"name": "A", "cvr": "91312221"}], "kontrolsum"),
        (["A"], "JSON-objekt"),
    ],
)
def test_bad_parties_are_refused(raw: Any, expected: str) -> None:
    with pytest.raises(FieldValueError) as raised:
        parse("parties", raw)

    assert expected in raised.value.text.da


def test_parties_respect_maximum() -> None:
    with pytest.raises(FieldValueError):
        parse("parties", [{"name": "A", "cvr": "91312220"}, {"name": "B", "cvr": "93147030"}], max=1)
