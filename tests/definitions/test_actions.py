"""Action parameters are checked at load time, including the expressions inside them and the outcomes."""

from __future__ import annotations

from engine.actions import ACTIONS
from tests.definitions.conftest import LoadProcess
from tests.definitions.helpers import DEMO_FILE, demo, formatted

SCORING = """\
fields:
  points:
    type: integer
    source: system
    label: {{da: Point, en: Points}}
steps:
  - insert_after: applicant_lookup
    step:
      id: scoring
      kind: action
      action: score
      label: {{da: Point, en: Points}}
      params:
        field: points
        criteria:
          - label: {{da: Fuldstændig, en: Complete}}
            points: {points}
            when: {when}
"""


def test_score_with_valid_criteria(load_process: LoadProcess) -> None:
    loaded = load_process(demo(SCORING.format(points="3", when="application_complete")))

    assert formatted(loaded) == []


def test_score_expression_with_unknown_field(load_process: LoadProcess) -> None:
    problems = formatted(load_process(demo(SCORING.format(points="areal_ha * 2", when="application_complete"))))

    assert len(problems) == 1
    assert " SF306 The field 'areal_ha' does not exist." in problems[0]
    assert ":24:21: " in problems[0]


def test_score_condition_that_does_not_parse(load_process: LoadProcess) -> None:
    problems = formatted(load_process(demo(SCORING.format(points="1", when="'application_complete and"))))

    assert len(problems) == 1
    assert " SF100 " in problems[0] or " SF307 " in problems[0]


def test_score_writes_only_system_integer(load_process: LoadProcess) -> None:
    text = demo(SCORING.format(points="1", when="application_complete")).replace("    source: system\n", "")

    problems = formatted(load_process(text))

    assert any("needs source: system" in problem for problem in problems)


def test_every_action_lists_outcomes() -> None:
    # SF332 compares `outcome.<step>` of an action step with the outcomes its action lists.
    assert [name for name, action in ACTIONS.items() if not action.outcomes] == []


def test_score_expression_with_unknown_outcome_step(load_process: LoadProcess) -> None:
    text = demo(SCORING.format(points="1", when="\"outcome.aplicant_lookup == 'found'\""))
    problems = load_process(text).problems

    assert [(problem.code, problem.text.en) for problem in problems] == [
        ("SF302", "The step 'aplicant_lookup' does not exist.")
    ]
    assert str(problems[0].location) == f"{DEMO_FILE}:25:19"


def test_score_expression_with_impossible_outcome(load_process: LoadProcess) -> None:
    text = demo(SCORING.format(points="1", when="\"outcome.applicant_lookup == 'ok'\""))

    assert [problem.code for problem in load_process(text).problems] == ["SF332"]
