"""Engine rules on a small purpose-built skeleton: six eyes, optional and conditional steps,
phases without a matching transition, and phase loops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.auth import Actor
from engine.definitions.loader import load_definitions
from engine.errors import Conflict, Forbidden, ProcessFault
from engine.runtime.services import Services
from engine.service import Sagsflow
from engine.storage.database import Database
from tests.helpers import APPROVER, APPROVER_2, CASEWORKER

SKELETON = """
skeleton: mini
title: {da: Mini, en: Mini}
roles:
  caseworker: {label: {da: Sagsbehandler, en: Caseworker}}
  approver: {label: {da: Godkender, en: Approver}}
intake_roles: [caseworker]
fields:
  amount: {type: integer, label: {da: Beløb, en: Amount}, required: true, min: 0}
  note: {type: text, source: caseworker, label: {da: Note, en: Note}}
  route: {type: enum, source: caseworker, label: {da: Vej, en: Route},
          options: [{value: a, label: {da: A, en: A}}, {value: b, label: {da: B, en: B}}]}
phases:
  - id: work
    label: {da: Arbejde, en: Work}
    steps:
      - id: prepare
        kind: task
        role: caseworker
        label: {da: Forbered, en: Prepare}
        form: [{field: route, required: true}]
      - id: extra_check
        kind: task
        role: caseworker
        required: false
        label: {da: Ekstra, en: Extra}
      - id: large_amount_check
        kind: task
        role: caseworker
        when: amount > 1000
        label: {da: Stort beløb, en: Large amount}
        form: [{field: note, required: true}]
    next:
      - {to: approval, when: "route == 'a'"}
  - id: approval
    label: {da: Godkendelse, en: Approval}
    steps:
      - {id: sign_off, kind: approval, role: approver, eyes: 6, approves: prepare, label: {da: Godkend, en: Approve}}
    next:
      - {to: done, when: "outcome.sign_off == 'approved'"}
      - {to: work}
  - id: done
    label: {da: Færdig, en: Done}
    final: true
"""

PROCESS = """
process: mini-process
extends: mini
title: {da: Miniproces, en: Mini process}
legal_basis: [{title: {da: Testlov, en: Test act}, reference: § 1}]
classification: "01.02.03"
"""

LOOP = """
skeleton: loop
title: {da: Løkke, en: Loop}
roles: {caseworker: {label: {da: S, en: C}}}
intake_roles: [caseworker]
fields:
  amount: {type: integer, label: {da: Beløb, en: Amount}}
phases:
  - {id: one, label: {da: En, en: One}, next: [{to: two, when: amount >= 0}, {to: end}]}
  - {id: two, label: {da: To, en: Two}, next: [{to: one, when: amount >= 0}, {to: end}]}
  - {id: end, label: {da: Slut, en: End}, final: true}
"""

LOOP_PROCESS = """
process: loop-process
extends: loop
title: {da: Løkke, en: Loop}
legal_basis: [{title: {da: Testlov, en: Test act}, reference: § 1}]
classification: "01.02.04"
"""

TIMED = """
skeleton: timed
title: {da: Tidsstyret, en: Timed}
roles: {caseworker: {label: {da: S, en: C}}}
intake_roles: [caseworker]
fields:
  amount: {type: integer, label: {da: Beløb, en: Amount}}
  reference: {type: text, label: {da: Reference, en: Reference}}
  wake_on: {type: date, label: {da: Vækkedato, en: Wake-up date}}
  fee_due: {type: money, source: system, label: {da: Gebyr, en: Fee}}
phases:
  - id: intake
    label: {da: Modtagelse, en: Intake}
    steps:
      - id: check_application
        kind: intake
        label: {da: Tjek ansøgningen, en: Check the application}
        form: [{field: reference, required: true}]
        params: {fee_field: fee_due}
    next: [{to: waiting}]
  - id: waiting
    label: {da: Venter, en: Waiting}
    steps:
      - {id: cooling_off, kind: timer, label: {da: Afkøling, en: Cooling off}, deadline: {value: 5, unit: working_days}}
      - {id: wake_up, kind: timer, label: {da: Vækning, en: Wake-up}, until: wake_on}
    next: [{to: done}]
  - id: done
    label: {da: Færdig, en: Done}
    final: true
"""

TIMED_PROCESS = """
process: timed-process
extends: timed
title: {da: Tidsstyret, en: Timed}
legal_basis: [{title: {da: Testlov, en: Test act}, reference: § 1}]
classification: "01.02.05"
fee: {amount: "450.00", label: {da: Gebyr, en: Fee}}
"""

MANAGER = Actor("ulla", frozenset({"caseworker", "approver"}))


@pytest.fixture
def mini(tmp_path: Path, database: Database, services: Services) -> Sagsflow:
    (tmp_path / "skeletons").mkdir()
    (tmp_path / "processes" / "mini").mkdir(parents=True)
    (tmp_path / "processes" / "loop").mkdir(parents=True)
    (tmp_path / "skeletons" / "mini.yaml").write_text(SKELETON, encoding="utf-8")
    (tmp_path / "skeletons" / "loop.yaml").write_text(LOOP, encoding="utf-8")
    (tmp_path / "processes" / "mini" / "mini-process.yaml").write_text(PROCESS, encoding="utf-8")
    (tmp_path / "processes" / "loop" / "loop-process.yaml").write_text(LOOP_PROCESS, encoding="utf-8")
    (tmp_path / "skeletons" / "timed.yaml").write_text(TIMED, encoding="utf-8")
    (tmp_path / "processes" / "timed").mkdir(parents=True)
    (tmp_path / "processes" / "timed" / "timed-process.yaml").write_text(TIMED_PROCESS, encoding="utf-8")
    loaded = load_definitions(tmp_path)
    assert not loaded.errors, [problem.format("en") for problem in loaded.errors]
    service = Sagsflow(database, services)
    service.deploy(loaded, "test")
    return service


def active(case: dict[str, Any]) -> list[str]:
    return sorted(case["active_steps"])


def test_condition_skips_step(mini: Sagsflow) -> None:
    small = mini.submit(CASEWORKER, "mini-process", {"amount": 500})
    large = mini.submit(CASEWORKER, "mini-process", {"amount": 5000})

    assert active(small) == ["extra_check", "prepare"]
    assert active(large) == ["extra_check", "large_amount_check", "prepare"]


def test_optional_step_is_skipped_on_leaving(mini: Sagsflow) -> None:
    case = mini.submit(CASEWORKER, "mini-process", {"amount": 500})

    case = mini.complete_step(CASEWORKER, case["id"], "prepare", {"route": "a"}, None, "da")

    assert case["phase"]["id"] == "approval"
    extra = next(step for step in case["checklist"] if step["step"] == "extra_check")
    assert extra["status"] == "skipped"


def test_no_matching_transition_changes_nothing(mini: Sagsflow) -> None:
    case = mini.submit(CASEWORKER, "mini-process", {"amount": 500})

    with pytest.raises(Conflict) as raised:
        mini.complete_step(CASEWORKER, case["id"], "prepare", {"route": "b"}, None, "da")
    after = mini.get_case(CASEWORKER, case["id"], "da")

    assert raised.value.code == "no_transition"
    assert after["version"] == case["version"]
    assert after["active_steps"] == case["active_steps"]
    assert "route" not in after["data"]


def test_six_eyes_needs_two_approvers(mini: Sagsflow) -> None:
    case = mini.submit(CASEWORKER, "mini-process", {"amount": 500})
    case = mini.complete_step(CASEWORKER, case["id"], "prepare", {"route": "a"}, None, "da")

    case = mini.approve(APPROVER, case["id"], "sign_off", "approve", None, None, "da")
    assert case["phase"]["id"] == "approval"
    with pytest.raises(Forbidden) as twice:
        mini.approve(APPROVER, case["id"], "sign_off", "approve", None, None, "da")
    case = mini.approve(APPROVER_2, case["id"], "sign_off", "approve", None, None, "da")

    assert twice.value.code == "six_eyes"
    assert case["phase"]["id"] == "done"
    assert case["status"] == "closed"


def test_six_eyes_excludes_preparer(mini: Sagsflow) -> None:
    case = mini.submit(MANAGER, "mini-process", {"amount": 500})
    case = mini.complete_step(MANAGER, case["id"], "prepare", {"route": "a"}, None, "da")

    with pytest.raises(Forbidden) as raised:
        mini.approve(MANAGER, case["id"], "sign_off", "approve", None, None, "da")

    assert raised.value.code == "four_eyes"


def test_rejection_returns_to_work(mini: Sagsflow) -> None:
    case = mini.submit(CASEWORKER, "mini-process", {"amount": 500})
    case = mini.complete_step(CASEWORKER, case["id"], "prepare", {"route": "a"}, None, "da")

    case = mini.approve(APPROVER, case["id"], "sign_off", "reject", "Forkert vej.", None, "da")

    assert case["phase"]["id"] == "work"
    assert [step["round"] for step in case["checklist"] if step["step"] == "prepare"] == [1, 2]


def test_phase_loop_is_stopped(mini: Sagsflow) -> None:
    with pytest.raises(ProcessFault):
        mini.submit(CASEWORKER, "loop-process", {"amount": 1})

    assert mini.list_cases(CASEWORKER, "da")["total"] == 0


def test_intake_records_completeness_and_fee(mini: Sagsflow) -> None:
    complete = mini.submit(CASEWORKER, "timed-process", {"amount": 1, "reference": "R-1", "wake_on": "2026-12-24"})
    incomplete = mini.submit(CASEWORKER, "timed-process", {"amount": 1})

    check = next(step for step in complete["checklist"] if step["step"] == "check_application")
    missing = next(step for step in incomplete["checklist"] if step["step"] == "check_application")
    assert check["outcome"] == "complete"
    assert missing["outcome"] == "incomplete"
    assert complete["data"]["fee_due"] == 45000


def test_timers_wait_until_due(mini: Sagsflow) -> None:
    case = mini.submit(CASEWORKER, "timed-process", {"amount": 1, "reference": "R-1", "wake_on": "2026-12-24"})

    timers = {step["step"]: step for step in case["checklist"] if step["phase"] == "waiting"}
    assert case["phase"]["id"] == "waiting"
    assert timers["cooling_off"]["status"] == "waiting"
    # Five working days after Friday 4 December 2026: Friday 11 December, 23:59 Copenhagen time.
    assert timers["cooling_off"]["due_at"] == "2026-12-11T22:59:59+00:00"
    assert timers["wake_up"]["due_at"] == "2026-12-24T22:59:59+00:00"


def test_timer_without_date_is_done(mini: Sagsflow) -> None:
    case = mini.submit(CASEWORKER, "timed-process", {"amount": 1, "reference": "R-1"})

    wake_up = next(step for step in case["checklist"] if step["step"] == "wake_up")
    assert wake_up["outcome"] == "no_date"
