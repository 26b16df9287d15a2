import json
from pathlib import Path

import pytest
from stdnum.dk import cvr as stdnum_cvr

from engine.adapters.cvr import CSV_COLUMNS, FakeCompanyRegister, is_valid_cvr

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples" / "cites"
HEADER = ",".join(CSV_COLUMNS)
GOOD_ROW = "90131443,Kragelund Terrarieimport ApS,Funder Bygade 14,8600,Silkeborg,NORMAL,462300"


@pytest.fixture(scope="module")
def register() -> FakeCompanyRegister:
    return FakeCompanyRegister()


def write_csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "companies.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_fake_register_size(register):
    assert len(register) >= 15


def test_fake_cvrs_pass_check(register):
    for company in register.companies():
        assert is_valid_cvr(company.cvr), company.name
        assert stdnum_cvr.is_valid(company.cvr), company.name


def test_fake_register_has_ceased_company(register):
    statuses = {company.status for company in register.companies()}
    assert statuses == {"NORMAL", "OPHØRT"}


def test_lookup_known_company(register):
    company = register.lookup("90131443")
    assert company is not None
    assert company.name == "Kragelund Terrarieimport ApS"
    assert company.postcode == "8600"


def test_lookup_unknown_returns_none(register):
    assert register.lookup("13585628") is None


def test_lookup_invalid_returns_none(register):
    assert register.lookup("not a cvr") is None


@pytest.mark.parametrize("value", ["13585628", "90131443"])
def test_valid_cvr_accepted(value):
    assert is_valid_cvr(value)


@pytest.mark.parametrize(
    "value",
    [
        "13585627",  # wrong check digit
        "DK13585628",
        "1358 5628",
        " 13585628",
        "1358562",
        "135856280",
        "03585628",  # first digit 0
        "١٣٥٨٥٦٢٨",  # Arabic-Indic digits
        "",
    ],
)
def test_invalid_cvr_rejected(value):
    assert not is_valid_cvr(value)


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("13585627,Firma ApS,Vej 1,8600,Silkeborg,NORMAL,462300", "invalid CVR"),
        ("13585628,Firma ApS,Vej 1,860,Silkeborg,NORMAL,462300", "postcode"),
        ("13585628,Firma ApS,Vej 1,8600,Silkeborg,AKTIV,462300", "status"),
        ("13585628,,Vej 1,8600,Silkeborg,NORMAL,462300", "name is empty"),
        ("13585628,Firma ApS,Vej 1,8600,Silkeborg,NORMAL,46.23", "industry_code"),
        ("13585628,Firma ApS,Vej 1,8600", "expected 7 fields"),
        ("90131443,Firma ApS,Vej 1,8600,Silkeborg,NORMAL,462300", "duplicate"),
    ],
)
def test_bad_row_names_line(tmp_path, bad_row, message):
    path = write_csv(tmp_path, GOOD_ROW, bad_row)
    with pytest.raises(ValueError, match="line 3") as error:
        FakeCompanyRegister(path)
    assert message in str(error.value)


def test_example_applicants_registered(register):
    example_files = sorted(EXAMPLES_DIR.glob("*.json"))
    assert len(example_files) >= 3
    for example_file in example_files:
        data = json.loads(example_file.read_text(encoding="utf-8"))["data"]
        company = register.lookup(data["applicant_cvr"])
        assert company is not None, example_file.name
        assert company.status == "NORMAL", example_file.name
        assert company.name == data["applicant_name"], example_file.name
        assert company.postcode == data["applicant_postcode"], example_file.name
        assert company.city == data["applicant_city"], example_file.name
