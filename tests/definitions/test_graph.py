"""The phase graph: unreachable phases, dead ends, loops and the order of transitions."""

from __future__ import annotations

from pathlib import Path

from engine.definitions.loader import load_definitions
from tests.definitions.helpers import formatted, write

SKELETON = """\
skeleton: graph
title: {{da: Graf, en: Graph}}
roles: {{caseworker: {{label: {{da: S, en: C}}}}}}
fields:
  amount: {{type: integer, label: {{da: Beløb, en: Amount}}}}
phases:
{phases}
"""

WORK = "{id: work, label: {da: A, en: W}, steps: [{id: do, kind: task, role: caseworker, label: {da: G, en: D}}]"


def load(root: Path, phases: str) -> list[str]:
    write(root, "skeletons/graph.yaml", SKELETON.format(phases=phases))
    return formatted(load_definitions(root))


def test_valid_graph_has_no_problems(root: Path) -> None:
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: done}}]}}
  - {{id: done, label: {{da: F, en: D}}, final: true}}""",
    )

    assert problems == []


def test_unreachable_phase(root: Path) -> None:
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: done}}]}}
  - {{id: orphan, label: {{da: O, en: O}}, next: [{{to: done}}]}}
  - {{id: done, label: {{da: F, en: D}}, final: true}}""",
    )

    assert problems == [
        "skeletons/graph.yaml:8:10: SF323 The phase 'orphan' cannot be reached from the first phase 'work'. "
        "Add a transition to the phase from another phase, or remove it."
    ]


def test_dead_end_phase(root: Path) -> None:
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: stuck, when: amount > 5}}, {{to: done}}]}}
  - {{id: stuck, label: {{da: S, en: S}}, steps: [{{id: wait, kind: task, role: caseworker, label: {{da: V, en: W}}}}], next: [{{to: work}}]}}
  - {{id: done, label: {{da: F, en: D}}, final: true}}""",  # noqa: E501
    )

    assert problems == []


def test_no_final_phase_is_a_dead_end(root: Path) -> None:
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: other}}]}}
  - {{id: other, label: {{da: B, en: O}}, steps: [{{id: look, kind: task, role: caseworker, label: {{da: K, en: L}}}}], next: [{{to: work}}]}}""",  # noqa: E501
    )

    # One problem for the pair of phases that no transition leaves, at the first of them.
    assert [problem.split(" ")[1] for problem in problems] == ["SF324"]
    assert "No path leads from the phase 'work' to a final phase" in problems[0]


def test_transition_after_unconditional_one_is_unused(root: Path) -> None:
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: done}}, {{to: other, when: amount > 5}}]}}
  - {{id: other, label: {{da: B, en: O}}, next: [{{to: done}}]}}
  - {{id: done, label: {{da: F, en: D}}, final: true}}""",
    )

    assert len(problems) == 1
    assert " SF325 warning: The transition from 'work' to 'other' is never taken" in problems[0]


def test_only_conditional_transitions_warn(root: Path) -> None:
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: done, when: amount > 5}}]}}
  - {{id: done, label: {{da: F, en: D}}, final: true}}""",
    )

    assert len(problems) == 1
    assert " SF326 warning: Every transition from the phase 'work' has a condition" in problems[0]


def test_automatic_loop_is_an_error(root: Path) -> None:
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: one}}]}}
  - {{id: one, label: {{da: E, en: O}}, next: [{{to: two}}]}}
  - {{id: two, label: {{da: T, en: T}}, next: [{{to: one}}]}}
  - {{id: done, label: {{da: F, en: D}}, final: true}}""",
    )

    codes = [problem.split(" ")[1] for problem in problems]
    assert "SF327" in codes
    assert "The phases one → two → one form a loop" in next(p for p in problems if " SF327 " in p)


def test_loop_through_manual_phase_is_allowed(root: Path) -> None:
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: check, when: amount > 5}}, {{to: done}}]}}
  - {{id: check, label: {{da: K, en: C}}, next: [{{to: work}}]}}
  - {{id: done, label: {{da: F, en: D}}, final: true}}""",
    )

    assert problems == []


def test_duplicate_condition_warns(root: Path) -> None:
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: done, when: amount > 5}}, {{to: other, when: "amount  >  5"}}, {{to: done}}]}}
  - {{id: other, label: {{da: B, en: O}}, next: [{{to: done}}]}}
  - {{id: done, label: {{da: F, en: D}}, final: true}}""",
    )

    assert len(problems) == 1
    assert " SF328 warning: " in problems[0]


def test_repeated_phase_keeps_own_positions(root: Path) -> None:
    # The typo is in the first of two phases named 'work'; each problem points at its own phase.
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: nowhere}}]}}
  - {{id: work, label: {{da: B, en: B}}, next: [{{to: done}}]}}
  - {{id: done, label: {{da: F, en: D}}, final: true}}""",
    )

    assert problems == [
        "skeletons/graph.yaml:7:123: SF305 The phase 'nowhere' does not exist. Known phases: done, work.",
        "skeletons/graph.yaml:8:10: SF301 Phase 'work' is defined twice; first in skeletons/graph.yaml:7:10. "
        "Give one of them another id.",
    ]


def test_repeated_step_points_at_first(root: Path) -> None:
    problems = load(
        root,
        f"""\
  - {WORK}, next: [{{to: check}}]}}
  - {{id: check, label: {{da: K, en: C}}, next: [{{to: done}}], steps: [{{id: do, kind: task, role: casewrker, \
label: {{da: G, en: D}}}}]}}
  - {{id: done, label: {{da: F, en: D}}, final: true}}""",
    )

    assert problems == [
        "skeletons/graph.yaml:8:73: SF301 Step 'do' is defined twice; first in skeletons/graph.yaml:7:52. "
        "Give one of them another id.",
        "skeletons/graph.yaml:8:95: SF314 The role 'casewrker' does not exist. Known roles: caseworker "
        "(did you mean 'caseworker'?).",
    ]
