"""The scheme routes over HTTP: roles, the bulk run, exports, and the report link as JSON and as a page."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from api.app import create_app
from engine.adapters.digital_post import MemoryDigitalPost
from engine.service import Sagsflow
from engine.settings import Settings
from tests.helpers import ADMIN
from tests.scheme_helpers import CASEWORKER, REPORT, Klap, open_scheme, permit_row, permits_csv


@dataclass
class Http:
    client: TestClient
    klap: Klap
    tokens: dict[str, str]

    def headers(self, user: str | None, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return headers

    def scheme(self, path: str) -> str:
        return f"/schemes/{self.klap.journal_number}{path}"


@pytest.fixture
def http(service: Sagsflow) -> Iterator[Http]:
    users = {
        "sigrid": (["caseworker"], ["klap"]),
        "bo": (["approver"], ["klap"]),
        "karen": (["caseworker"], ["cites"]),
        "havnen": (["applicant"], []),
    }
    for name, (roles, teams) in users.items():
        service.add_user(ADMIN, name, roles, teams)
    tokens = {name: service.create_token(name) for name in users}
    klap = open_scheme(service)
    with TestClient(create_app(service, Settings(), dispatch_interval=0), raise_server_exceptions=False) as client:
        yield Http(client, klap, tokens)


def import_members(http: Http, count: int, user: str = "sigrid") -> dict[str, str]:
    content = permits_csv([permit_row(index) for index in range(1, count + 1)])
    response = http.client.post(
        http.scheme("/members/import"), content=content, headers=http.headers(user, **{"Content-Type": "text/csv"})
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def run_bulk(http: Http, user: str = "sigrid") -> dict[str, object]:
    response = http.client.post(http.scheme("/requests"), json={"period": "2026"}, headers=http.headers(user))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_bulk_run_over_http(http: Http) -> None:
    import_members(http, 3)

    first = run_bulk(http)
    again = run_bulk(http)

    assert (first["created"], first["existing"], first["members"]) == (3, 0, 3)
    assert (first["first_journal_number"], first["last_journal_number"]) == ("2026-000002", "2026-000004")
    assert (again["created"], again["existing"]) == (0, 3)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/members"),
        ("post", "/members/import"),
        ("post", "/requests"),
        ("get", "/overview"),
        ("get", "/export?period=2026"),
    ],
)
def test_scheme_routes_need_a_token(http: Http, method: str, path: str) -> None:
    response = http.client.request(method, http.scheme(path), json={"period": "2026"})

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("user", "status", "code"),
    [("bo", 403, "missing_role"), ("havnen", 403, "staff_only"), ("karen", 404, "unknown_case")],
)
def test_bulk_run_needs_a_caseworker_of_the_team(http: Http, user: str, status: int, code: str) -> None:
    import_members(http, 1)

    response = http.client.post(http.scheme("/requests"), json={"period": "2026"}, headers=http.headers(user))
    imported = http.client.post(
        http.scheme("/members/import"),
        content=permits_csv([permit_row(2)]),
        headers=http.headers(user, **{"Content-Type": "text/csv"}),
    )

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert imported.status_code == status
    assert http.klap.schemes.members(CASEWORKER, http.klap.scheme_id)["total"] == 1


def test_reads_are_open_to_staff_of_the_team(http: Http) -> None:
    import_members(http, 2)

    members = http.client.get(http.scheme("/members"), headers=http.headers("bo"))
    overview = http.client.get(http.scheme("/overview"), headers=http.headers("bo"))
    applicant = http.client.get(http.scheme("/overview"), headers=http.headers("havnen"))

    assert members.status_code == 200
    assert [item["key"] for item in members.json()["items"]] == ["KLAP-2024-00001", "KLAP-2024-00002"]
    assert overview.json()["members"] == {"active": 2, "inactive": 0}
    assert applicant.status_code == 403


def test_import_rejects_other_media_types(http: Http) -> None:
    response = http.client.post(
        http.scheme("/members/import"),
        content=b"<permits/>",
        headers=http.headers("sigrid", **{"Content-Type": "application/xml"}),
    )

    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["field"] == "Content-Type"


def test_import_errors_name_the_lines(http: Http) -> None:
    content = permits_csv([permit_row(1), permit_row(2, applicant_postcode="99999")])

    response = http.client.post(
        http.scheme("/members/import"),
        content=content,
        headers=http.headers("sigrid", **{"Content-Type": "text/csv", "Accept-Language": "en"}),
    )

    assert response.status_code == 422
    (error,) = response.json()["error"]["errors"]
    assert error["field"] == "lines.3.applicant_postcode"
    assert error["message"].startswith("Line 3: ")


def test_exports_have_a_file_name(http: Http) -> None:
    import_members(http, 2)
    run_bulk(http)

    csv_response = http.client.get(http.scheme("/export?period=2026"), headers=http.headers("sigrid"))
    xlsx_response = http.client.get(
        http.scheme("/export?period=2026&format=xlsx"), headers=http.headers("sigrid", **{"Accept-Language": "en"})
    )

    name = f"ordningssag-{http.klap.journal_number}-2026"
    assert csv_response.status_code == 200
    assert csv_response.headers["content-type"] == "text/csv; charset=utf-8"
    assert f'filename="{name}.csv"' in csv_response.headers["content-disposition"]
    assert csv_response.content.decode("utf-8-sig").splitlines()[0].startswith("Periode,Medlem,Navn")
    assert f'filename="{name}.xlsx"' in xlsx_response.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(xlsx_response.content), read_only=True)["2026"]
    assert [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["KLAP-2024-00001", "KLAP-2024-00002"]


def test_export_rejects_an_unknown_format(http: Http) -> None:
    response = http.client.get(http.scheme("/export?period=2026&format=pdf"), headers=http.headers("sigrid"))

    assert response.status_code == 422


# The report link -----------------------------------------------------------------------------------------


def _token(http: Http) -> str:
    """Run the bulk run for one member and return the token of its link, from the letter that was sent."""
    import_members(http, 1)
    run_bulk(http)
    post = http.klap.service.services.digital_post
    assert isinstance(post, MemoryDigitalPost)
    (letter,) = post.delivered.values()
    found = re.search(r"/report-replies/([A-Za-z0-9_-]+)", letter.main_document_text)
    assert found is not None
    return found.group(1)


def test_report_link_as_json(http: Http) -> None:
    token = _token(http)

    described = http.client.get(f"/report-replies/{token}", headers={"Accept-Language": "en"})
    filed = http.client.post(f"/report-replies/{token}", json={"data": REPORT})
    again = http.client.post(f"/report-replies/{token}", json={"data": REPORT})

    assert described.status_code == 200
    assert described.headers["cache-control"] == "no-store"
    assert described.json()["period"] == "2026"
    assert filed.status_code == 201
    assert filed.json()["journal_number"] == "2026-000002"
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_reported")


def test_report_link_refusals(http: Http) -> None:
    token = _token(http)

    unknown = http.client.post("/report-replies/" + "z" * 43, json={"data": REPORT})
    invalid = http.client.post(f"/report-replies/{token}", json={"data": {"dumped_volume_m3": -1}})
    no_data = http.client.post(f"/report-replies/{token}", json={"values": {}})

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_report_link")
    assert invalid.status_code == 422
    assert invalid.json()["error"]["errors"][0]["field"] == "data.dumped_volume_m3"
    assert no_data.status_code == 422


def test_report_page_and_form(http: Http) -> None:
    token = _token(http)

    page = http.client.get(f"/report-replies/{token}", headers={"Accept": "text/html"})
    rejected = http.client.post(
        f"/report-replies/{token}/form", data={"dumped_volume_m3": "800"}, headers={"Accept-Language": "en"}
    )
    filed = http.client.post(f"/report-replies/{token}/form", data={"dumped_volume_m3": "0", "report_note": "Intet"})
    used = http.client.get(f"/report-replies/{token}", headers={"Accept": "text/html"})

    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert "Indberetning for 2026" in page.text
    assert 'name="dumped_volume_m3"' in page.text
    assert 'min="0"' in page.text
    assert rejected.status_code == 422
    assert "Your report was not sent" in rejected.text
    assert 'value="800"' in rejected.text
    assert filed.status_code == 201
    assert "Tak, vi har modtaget jeres indberetning" in filed.text
    assert used.status_code == 409
    assert "allerede modtaget" in used.text


def test_report_form_address_redirects_to_the_page(http: Http) -> None:
    response = http.client.get("/report-replies/abc/form", follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/report-replies/abc")
