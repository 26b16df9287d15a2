"""Processes that extend other processes: inheritance, further changes, loops and broken parents."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.definitions.loader import LoadedDefinitions, load_definitions
from tests.definitions.helpers import HEADER, formatted, write
from tests.helpers import REPOSITORY

PARENT = (
    HEADER
    + """\
fields:
  species:
    type: text
    label: {da: Art, en: Species}
    required: true
steps:
  - insert_after: fact_assessment
    step:
      id: parent_check
      kind: task
      role: caseworker
      label: {da: Forælder, en: Parent}
"""
)

CHILD = """\
process: demo-variant
extends: demo
title: {da: Variant, en: Variant}
steps:
  - insert_after: parent_check
    step:
      id: child_check
      kind: task
      role: caseworker
      label: {da: Barn, en: Child}
field_overrides:
  applicant_cvr:
    required: true
"""


def step_ids(loaded: LoadedDefinitions, process_id: str, phase_id: str) -> list[str]:
    phase = next(p for p in loaded.compiled[process_id].definition.phases if p.id == phase_id)
    return [step.id for step in phase.steps]


def test_child_inherits_and_extends(root: Path) -> None:
    write(root, "processes/afgoerelse/demo.yaml", PARENT)
    write(root, "processes/afgoerelse/demo-variant.yaml", CHILD)

    loaded = load_definitions(root)
    child = loaded.compiled["demo-variant"].definition

    assert formatted(loaded) == []
    assert step_ids(loaded, "demo-variant", "fact_finding") == [
        "applicant_lookup",
        "fact_assessment",
        "parent_check",
        "child_check",
    ]
    assert child.parents == ["demo"]
    assert child.classification == "01.02.03"
    assert child.legal_basis[0].reference == "§ 1"
    assert "species" in child.fields
    assert child.fields["applicant_cvr"].required is True
    assert loaded.compiled["demo"].definition.fields["applicant_cvr"].required is False


def test_child_alone_loads_its_parent(root: Path) -> None:
    write(root, "processes/afgoerelse/demo.yaml", PARENT)
    child = write(root, "processes/afgoerelse/demo-variant.yaml", CHILD)

    loaded = load_definitions(root, [child])

    assert sorted(loaded.compiled) == ["demo-variant"]


def test_child_may_not_redefine_parent_field(root: Path) -> None:
    write(root, "processes/afgoerelse/demo.yaml", PARENT)
    write(
        root,
        "processes/afgoerelse/demo-variant.yaml",
        CHILD + "fields:\n  species:\n    type: text\n    label: {da: Art, en: Species}\n",
    )

    problems = formatted(load_definitions(root))

    assert len(problems) == 1
    assert "SF301 Field 'species' is defined twice; first in processes/afgoerelse/demo.yaml:" in problems[0]


def test_extends_loop_is_reported(root: Path) -> None:
    write(
        root,
        "processes/afgoerelse/a.yaml",
        HEADER.replace("process: demo", "process: a").replace("extends: afgoerelse", "extends: b"),
    )
    write(
        root,
        "processes/afgoerelse/b.yaml",
        HEADER.replace("process: demo", "process: b").replace("extends: afgoerelse", "extends: a"),
    )

    problems = formatted(load_definitions(root))

    assert problems == [
        "processes/afgoerelse/a.yaml:2:10: SF330 The process 'a' ends up extending itself: a → b → a. "
        "Change 'extends' in one of the processes, so that the chain ends in a skeleton.",
        "processes/afgoerelse/b.yaml:2:10: SF330 The process 'b' ends up extending itself: b → a → b. "
        "Change 'extends' in one of the processes, so that the chain ends in a skeleton.",
    ]


def test_broken_parent_blocks_child(root: Path) -> None:
    write(root, "processes/afgoerelse/demo.yaml", PARENT.replace("kind: task", "kind: tasks"))
    write(root, "processes/afgoerelse/demo-variant.yaml", CHILD)

    loaded = load_definitions(root)

    assert loaded.compiled == {}
    assert any(" SF202 " in problem and "demo.yaml" in problem for problem in formatted(loaded))


def test_process_without_legal_basis_anywhere(root: Path) -> None:
    text = HEADER.replace('legal_basis:\n  - title: {da: Lov, en: Act}\n    reference: "§ 1"\n', "")
    write(root, "processes/afgoerelse/demo.yaml", text)

    problems = formatted(load_definitions(root))

    assert problems == [
        "processes/afgoerelse/demo.yaml:1:1: SF201 The key 'legal_basis' is missing. Add 'legal_basis:' here."
    ]


def test_child_changes_parent_step_deadline(root: Path) -> None:
    write(root, "processes/afgoerelse/demo.yaml", PARENT)
    write(
        root,
        "processes/afgoerelse/demo-variant.yaml",
        CHILD + "step_deadlines:\n  parent_check: {value: 5, unit: working_days}\n",
    )

    loaded = load_definitions(root)
    phase = next(p for p in loaded.compiled["demo-variant"].definition.phases if p.id == "fact_finding")
    step = next(s for s in phase.steps if s.id == "parent_check")

    assert step.deadline is not None
    assert (step.deadline.value, step.deadline.unit) == (5, "working_days")


def test_process_named_like_skeleton(root: Path) -> None:
    # A process may not take a skeleton's id, because `extends` names processes and skeletons alike.
    shutil.copy(REPOSITORY / "skeletons" / "tilsyn.yaml", root / "skeletons" / "tilsyn.yaml")
    write(root, "processes/afgoerelse/tilsyn.yaml", HEADER.replace("process: demo", "process: tilsyn"))
    variant = HEADER.replace("process: demo", "process: inspection").replace("extends: afgoerelse", "extends: tilsyn")
    write(root, "processes/tilsyn/inspection.yaml", variant)
    loaded = load_definitions(root)

    assert formatted(loaded) == [
        "processes/afgoerelse/tilsyn.yaml:1:10: SF301 Process 'tilsyn' is defined twice; first in the skeleton "
        "skeletons/tilsyn.yaml:10:11. Processes and skeletons share ids, because 'extends' can name either; give "
        "the process another id."
    ]
    assert loaded.problems[0].text.da == (
        "Proces 'tilsyn' er defineret to gange; første gang i skelettet skeletons/tilsyn.yaml:10:11."
    )
    assert sorted(loaded.compiled) == ["inspection"]
    assert loaded.compiled["inspection"].definition.skeleton == "tilsyn"
    assert loaded.compiled["inspection"].definition.parents == []


def test_process_named_like_broken_skeleton(root: Path) -> None:
    write(root, "skeletons/tilsyn.yaml", "skeleton: tilsyn\ntitle: [\n")
    write(root, "processes/afgoerelse/tilsyn.yaml", HEADER.replace("process: demo", "process: tilsyn"))
    codes = [(problem.code, problem.location.file) for problem in load_definitions(root).problems]

    assert ("SF301", "processes/afgoerelse/tilsyn.yaml") in codes
