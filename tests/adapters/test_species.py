import json
from pathlib import Path

import pytest

from engine.adapters.species import (
    CITES_APPENDICES,
    CSV_COLUMNS,
    EU_ANNEXES,
    TAXON_GROUPS,
    OfflineSpeciesPlus,
)

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples" / "cites"
HEADER = ",".join(CSV_COLUMNS)
GOOD_ROW = "Python regius,Pythonidae,Reptilia,kongepython,ball python,II,B,"


@pytest.fixture(scope="module")
def register() -> OfflineSpeciesPlus:
    return OfflineSpeciesPlus()


def write_csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "excerpt.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_excerpt_has_at_least_60_taxa(register):
    assert len(register) >= 60


def test_excerpt_covers_every_group(register):
    groups = {taxon.taxon_group for taxon in register.taxa()}
    assert groups == TAXON_GROUPS


def test_excerpt_codes_are_known(register):
    for taxon in register.taxa():
        assert taxon.cites_appendix in CITES_APPENDICES, taxon.scientific_name
        assert taxon.eu_annex in EU_ANNEXES, taxon.scientific_name


def test_find_known_listing(register):
    taxon = register.find("Python regius")
    assert taxon is not None
    assert taxon.cites_appendix == "II"
    assert taxon.eu_annex == "B"
    assert taxon.common_name_da == "kongepython"


def test_find_eu_stricter_than_cites(register):
    taxon = register.find("Testudo hermanni")
    assert taxon is not None
    assert taxon.cites_appendix == "II"
    assert taxon.eu_annex == "A"


def test_find_ignores_case(register):
    assert register.find("PYTHON REGIUS") == register.find("Python regius")


def test_find_ignores_whitespace(register):
    assert register.find("  Python \t regius\n") == register.find("Python regius")


def test_find_unknown_returns_none(register):
    assert register.find("Python imaginarius") is None


def test_find_empty_returns_none(register):
    assert register.find("   ") is None


def test_empty_danish_name_is_none(register):
    taxon = register.find("Ara macao")
    assert taxon is not None
    assert taxon.common_name_da is None


def test_suggest_misspelled_name(register):
    assert register.suggest("python regus")[0] == "Python regius"


def test_suggest_danish_common_name(register):
    assert register.suggest("kongepython")[0] == "Python regius"


def test_suggest_english_common_name(register):
    assert register.suggest("Ball Python")[0] == "Python regius"


def test_suggest_respects_limit(register):
    assert len(register.suggest("Testudo", limit=2)) <= 2


def test_suggest_no_duplicates(register):
    suggestions = register.suggest("falk", limit=10)
    assert len(suggestions) == len(set(suggestions))


def test_suggest_nonsense_is_empty(register):
    assert register.suggest("qqqqxxxx") == []


def test_suggest_blank_is_empty(register):
    assert register.suggest("  ") == []


def test_load_custom_file(tmp_path):
    register = OfflineSpeciesPlus(write_csv(tmp_path, GOOD_ROW))
    assert len(register) == 1


def test_quoted_note_with_comma(tmp_path):
    row = 'Boa constrictor,Boidae,Reptilia,,boa constrictor,II,B,"Split, see note"'
    taxon = OfflineSpeciesPlus(write_csv(tmp_path, row)).find("Boa constrictor")
    assert taxon is not None
    assert taxon.note == "Split, see note"


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("Python regius,Pythonidae,Reptilia,kongepython,ball python,IV,B,", "cites_appendix"),
        ("Python regius,Pythonidae,Reptilia,kongepython,ball python,II,E,", "eu_annex"),
        ("Python regius,Pythonidae,Reptiles,kongepython,ball python,II,B,", "taxon_group"),
        (",Pythonidae,Reptilia,kongepython,ball python,II,B,", "scientific_name is empty"),
        ("Python regius,,Reptilia,kongepython,ball python,II,B,", "family is empty"),
        ("Python regius,Pythonidae,Reptilia,kongepython,,II,B,", "common_name_en is empty"),
        ("Python regius,Pythonidae,Reptilia", "expected 8 fields"),
        ("python  REGIUS,Pythonidae,Reptilia,,ball python,II,B,", "duplicate"),
    ],
)
def test_bad_row_names_line(tmp_path, bad_row, message):
    other_row = "Testudo hermanni,Testudinidae,Reptilia,,Hermann's tortoise,II,A,"
    path = write_csv(tmp_path, GOOD_ROW, other_row, bad_row)
    with pytest.raises(ValueError, match="line 4") as error:
        OfflineSpeciesPlus(path)
    assert message in str(error.value)


def test_bad_header_raises(tmp_path):
    path = tmp_path / "excerpt.csv"
    path.write_text("name,appendix\nPython regius,II\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        OfflineSpeciesPlus(path)


def test_example_species_in_excerpt(register):
    example_files = sorted(EXAMPLES_DIR.glob("*.json"))
    assert len(example_files) >= 3
    for example_file in example_files:
        species = json.loads(example_file.read_text(encoding="utf-8"))["data"]["species"]
        assert register.find(species) is not None, example_file.name
