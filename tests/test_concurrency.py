"""Two commands racing on one case: one wins, the other gets a conflict, nothing is lost or doubled."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from engine.errors import Conflict
from engine.service import Sagsflow
from engine.settings import Settings
from engine.storage.tables import Case, CaseEvent, CaseStep
from tests.conftest import Clock
from tests.helpers import APPLICANT, CASEWORKER, CASEWORKER_2, Tokens, example


def race(*attempts: Callable[[], Any]) -> list[Any]:
    """Run the attempts in threads released at the same moment; return results or exceptions."""
    barrier = threading.Barrier(len(attempts))
    results: list[Any] = [None] * len(attempts)

    def run(index: int, attempt: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = attempt()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(index, attempt)) for index, attempt in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def completions(service: Sagsflow, case_id: int, step_id: str) -> int:
    with service.database.read() as session:
        return (
            session.scalar(
                select(func.count()).where(
                    CaseStep.case_id == case_id, CaseStep.step_id == step_id, CaseStep.status == "done"
                )
            )
            or 0
        )


def events(service: Sagsflow, case_id: int, command: str) -> int:
    with service.database.read() as session:
        return (
            session.scalar(select(func.count()).where(CaseEvent.case_id == case_id, CaseEvent.command == command)) or 0
        )


def test_racing_completions_with_version(service: Sagsflow, clock: Clock) -> None:
    application = example("01")
    case = service.submit(APPLICANT, application["process"], application["data"], "da")
    clock.delay = 0.2

    def attempt(actor: Any) -> Callable[[], Any]:
        return lambda: service.complete_step(
            actor, case["id"], "completeness_check", {"application_complete": True}, case["version"], "da"
        )

    results = race(attempt(CASEWORKER), attempt(CASEWORKER_2))
    clock.delay = 0.0

    winners = [result for result in results if isinstance(result, dict)]
    conflicts = [result for result in results if isinstance(result, Conflict)]
    assert len(winners) == 1
    assert len(conflicts) == 1
    assert conflicts[0].code == "stale_version"
    assert completions(service, case["id"], "completeness_check") == 1
    assert events(service, case["id"], "complete_step") == 1
    final = service.get_case(CASEWORKER, case["id"], "da")
    assert final["version"] == case["version"] + 1


def test_racing_completions_without_version(service: Sagsflow, clock: Clock) -> None:
    application = example("01")
    case = service.submit(APPLICANT, application["process"], application["data"], "da")
    clock.delay = 0.2

    def attempt(actor: Any) -> Callable[[], Any]:
        return lambda: service.complete_step(
            actor, case["id"], "completeness_check", {"application_complete": True}, None, "da"
        )

    results = race(attempt(CASEWORKER), attempt(CASEWORKER_2))
    clock.delay = 0.0

    conflicts = [result for result in results if isinstance(result, Conflict)]
    assert sum(isinstance(result, dict) for result in results) == 1
    assert [conflict.code for conflict in conflicts] == ["step_not_active"]
    assert completions(service, case["id"], "completeness_check") == 1
    assert events(service, case["id"], "complete_step") == 1


def test_racing_http_requests_get_one_409(service: Sagsflow, tokens: Tokens, clock: Clock) -> None:
    app = create_app(service, Settings())
    with TestClient(app) as first, TestClient(app) as second:
        case = first.post("/cases", json=example("01"), headers=Tokens.header(tokens.applicant)).json()
        body = {"data": {"application_complete": True}, "version": case["version"]}
        url = f"/cases/{case['id']}/steps/completeness_check/complete"
        clock.delay = 0.2
        responses = race(
            lambda: first.post(url, json=body, headers=Tokens.header(tokens.caseworker)),
            lambda: second.post(url, json=body, headers=Tokens.header(tokens.caseworker_2)),
        )
        clock.delay = 0.0

    assert sorted(response.status_code for response in responses) == [200, 409]
    assert completions(service, case["id"], "completeness_check") == 1


def test_concurrent_submissions_get_distinct_journal_numbers(service: Sagsflow) -> None:
    def submit(variant: int) -> Callable[[], Any]:
        application = example("01", variant)
        return lambda: service.submit(APPLICANT, application["process"], application["data"], "da")

    results = race(*[submit(variant) for variant in range(6)])

    numbers = sorted(result["journal_number"] for result in results)
    assert numbers == [f"2026-{sequence:06d}" for sequence in range(1, 7)]
    with service.database.read() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 6


def test_journal_numbers_restart_each_year(service: Sagsflow, clock: Clock) -> None:
    first = service.submit(APPLICANT, "cites-import", example("01", 1)["data"], "da")
    clock.advance(days=30)  # 3 January 2027
    second = service.submit(APPLICANT, "cites-import", example("01", 2)["data"], "da")

    assert first["journal_number"] == "2026-000001"
    assert second["journal_number"] == "2027-000001"


def test_racing_identical_applications_create_one_case(service: Sagsflow) -> None:
    application = example("01")

    def submit() -> Any:
        return service.submit(APPLICANT, application["process"], application["data"], "da")

    results = race(submit, submit)

    conflicts = [result for result in results if isinstance(result, Conflict)]
    created = [result for result in results if isinstance(result, dict)]
    assert len(created) == 1
    assert [conflict.code for conflict in conflicts] == ["duplicate_application"]
    assert created[0]["journal_number"] in conflicts[0].message("da"), "the refusal names the open case"
    with service.database.read() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 1


def test_duplicate_ignores_case_and_extra_spaces(service: Sagsflow) -> None:
    application = example("01")
    first = service.submit(APPLICANT, application["process"], application["data"], "da")
    number = application["data"]["export_permit_number"]
    variant = {**application["data"], "export_permit_number": f"  {number.lower()} "}

    with pytest.raises(Conflict) as refused:
        service.submit(APPLICANT, application["process"], variant, "da")

    assert refused.value.code == "duplicate_application"
    assert first["journal_number"] in refused.value.message("da")
