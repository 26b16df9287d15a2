"""Generated definitions: loading never crashes, and whatever validates also compiles and runs."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.definitions.fields import FIELD_TYPES
from engine.definitions.loader import load_definitions
from engine.definitions.source import load_source
from tests.helpers import REPOSITORY

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
labels = st.fixed_dictionaries({"da": st.text(min_size=1, max_size=8), "en": st.text(min_size=1, max_size=8)})
SKELETON_STEPS = ["completeness_check", "applicant_lookup", "fact_assessment", "draft_decision", "closing_check"]
KNOWN_FIELDS = ["application_complete", "applicant_name", "decision_outcome", "consultation_required"]

guards = st.one_of(
    st.sampled_from(KNOWN_FIELDS),
    st.builds(lambda f, n: f"{f} > {n}", st.sampled_from(KNOWN_FIELDS), st.integers(-5, 5)),
    st.builds(lambda f: f"not {f}", st.sampled_from([*KNOWN_FIELDS, "nowhere"])),
    st.text(max_size=12),
)

fields = st.fixed_dictionaries(
    {"type": st.sampled_from([*FIELD_TYPES, "colour"]), "label": labels},
    optional={
        "required": st.booleans(),
        "source": st.sampled_from(["application", "caseworker", "system", "robot"]),
        "min": st.integers(-3, 3),
        "max": st.integers(-3, 3),
        "options": st.lists(st.fixed_dictionaries({"value": identifiers, "label": labels}), max_size=3),
        "max_length": st.integers(0, 5),
        "pattern": st.sampled_from(["^[0-9]+$", "(", "[a-z]*"]),
    },
)

steps = st.fixed_dictionaries(
    {
        "id": identifiers,
        "kind": st.sampled_from(["task", "action", "letter", "approval", "hearing"]),
        "label": labels,
    },
    optional={
        "role": st.sampled_from(["caseworker", "approver", "nobody"]),
        "when": guards,
        "required": st.booleans(),
        "action": st.sampled_from(["cvr_lookup", "species_plus_lookup", "launch_rocket"]),
        "letter": st.sampled_from(["receipt", "decision", "postcard"]),
        "approves": st.sampled_from(["draft_decision", "applicant_lookup", "nothing"]),
        "eyes": st.sampled_from([4, 6, 5]),
        "form": st.lists(
            st.fixed_dictionaries(
                {"field": st.sampled_from([*KNOWN_FIELDS, "nowhere"])}, optional={"required": st.booleans()}
            ),
            max_size=2,
        ),
    },
)

changes = st.one_of(
    st.fixed_dictionaries({"insert_after": st.sampled_from(SKELETON_STEPS), "step": steps}),
    st.fixed_dictionaries({"insert_before": st.sampled_from(SKELETON_STEPS), "step": steps}),
    st.fixed_dictionaries({"replace": st.sampled_from([*SKELETON_STEPS, "decision_approval"]), "step": steps}),
    st.fixed_dictionaries({"remove": st.sampled_from([*SKELETON_STEPS, "decision_letter", "nowhere"])}),
    st.fixed_dictionaries({"insert_after": identifiers, "remove": identifiers}),
)

processes = st.fixed_dictionaries(
    {
        "process": st.sampled_from(["demo", "demo-two", "Demo"]),
        "extends": st.sampled_from(["afgoerelse", "afgoerelse", "tilsyn", "demo"]),
        "title": labels,
        "legal_basis": st.just([{"title": {"da": "Lov", "en": "Act"}, "reference": "§ 1"}]),
        "classification": st.sampled_from(["01.02.03", "1.2.3"]),
    },
    optional={
        "fields": st.dictionaries(identifiers, fields, max_size=3),
        "steps": st.lists(changes, max_size=4),
        "step_deadlines": st.dictionaries(
            st.sampled_from(SKELETON_STEPS),
            st.fixed_dictionaries(
                {"value": st.integers(-1, 40), "unit": st.sampled_from(["weeks", "working_days", "fortnights"])}
            ),
            max_size=2,
        ),
        "field_overrides": st.dictionaries(
            st.sampled_from([*KNOWN_FIELDS, "nowhere"]), st.fixed_dictionaries({"required": st.booleans()}), max_size=2
        ),
        "case_title": st.sampled_from(["{{ applicant_name }}", "{{ ", "{% for %}"]),
        "colour": st.just("blue"),
    },
)


def _root(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    if not root.exists():
        shutil.copytree(REPOSITORY / "skeletons" / "letters", root / "skeletons" / "letters")
        shutil.copy(REPOSITORY / "skeletons" / "afgoerelse.yaml", root / "skeletons" / "afgoerelse.yaml")
    return root


@SETTINGS
@given(document=processes)
def test_generated_processes_load_without_crashing(tmp_path: Path, document: dict[str, Any]) -> None:
    root = _root(tmp_path, "generated")
    target = root / "processes" / "afgoerelse" / "generated.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    loaded = load_definitions(root)

    for problem in loaded.problems:
        assert problem.code.startswith("SF"), problem
        assert problem.location.line >= 1
        assert problem.text.da
        assert problem.text.en
    if not loaded.errors:
        process = loaded.compiled[document["process"]]
        context = process.guard_context({}, {}, date(2026, 12, 4))
        for phase_id, phase in process.phases.items():
            if not phase.final:
                process.advance(phase_id, context)


@SETTINGS
@given(text=st.text(max_size=400))
def test_arbitrary_text_never_crashes_reader(tmp_path: Path, text: str) -> None:
    path = tmp_path / "arbitrary.yaml"
    path.write_text(text, encoding="utf-8")

    source, problems = load_source(path, "arbitrary.yaml")

    assert source is not None or problems


@SETTINGS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_reader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bytes.yaml"
    path.write_bytes(data)

    source, problems = load_source(path, "bytes.yaml")

    assert source is not None or problems


phase_ids = st.sampled_from(["a", "b", "c", "d", "e"])


@st.composite
def skeleton_graphs(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(phase_ids, min_size=1, max_size=5, unique=True))
    phases = []
    for phase_id in ids:
        phase: dict[str, Any] = {"id": phase_id, "label": {"da": phase_id, "en": phase_id}}
        if draw(st.booleans()):
            phase["steps"] = [
                {"id": f"work_{phase_id}", "kind": "task", "role": "worker", "label": {"da": "A", "en": "W"}}
            ]
        if draw(st.integers(0, 3)) == 0:
            phase["final"] = True
        else:
            targets = draw(st.lists(st.sampled_from([*ids, "z"]), max_size=3))
            phase["next"] = [
                {"to": target, **({"when": "amount > 2"} if draw(st.booleans()) else {})} for target in targets
            ]
        phases.append(phase)
    return {
        "skeleton": "graph",
        "title": {"da": "Graf", "en": "Graph"},
        "roles": {"worker": {"label": {"da": "M", "en": "W"}}},
        "intake_roles": ["worker"],
        "fields": {"amount": {"type": "integer", "label": {"da": "B", "en": "A"}}},
        "phases": phases,
    }


@SETTINGS
@given(skeleton=skeleton_graphs(), amount=st.integers(0, 5))
def test_valid_graphs_always_reach_an_end(tmp_path: Path, skeleton: dict[str, Any], amount: int) -> None:
    root = tmp_path / "graphs"
    (root / "skeletons").mkdir(parents=True, exist_ok=True)
    (root / "skeletons" / "graph.yaml").write_text(json.dumps(skeleton), encoding="utf-8")
    process = {
        "process": "graph-process",
        "extends": "graph",
        "title": {"da": "G", "en": "G"},
        "legal_basis": [{"title": {"da": "L", "en": "A"}, "reference": "§ 1"}],
        "classification": "01.01.01",
    }
    (root / "processes" / "graph").mkdir(parents=True, exist_ok=True)
    (root / "processes" / "graph" / "graph-process.yaml").write_text(json.dumps(process), encoding="utf-8")

    loaded = load_definitions(root)
    if loaded.errors:
        return

    # Follow the machine from the first phase; a valid graph never gets stuck in a loop of
    # automatic phases, and any phase it reaches has a way on or is final.
    compiled = loaded.compiled["graph-process"]
    context = compiled.guard_context({"amount": amount}, {}, date(2026, 12, 4))
    phase = compiled.initial_phase
    automatic_hops = 0
    for _ in range(30):
        current = compiled.phases[phase]
        if current.final:
            break
        following = compiled.advance(phase, context)
        if following is None:
            break  # the case waits for a condition to hold: allowed, SF326 warns about it
        automatic_hops = 0 if current.steps else automatic_hops + 1
        assert automatic_hops <= len(compiled.phases), "an automatic loop passed validation"
        phase = following


@st.composite
def valid_processes(draw: st.DrawFn) -> dict[str, Any]:
    """Processes built only from valid parts: every one of them must validate and compile."""
    field_count = draw(st.integers(0, 3))
    new_fields: dict[str, Any] = {}
    for index in range(field_count):
        kind = draw(st.sampled_from(["text", "integer", "boolean", "enum", "date", "email", "country"]))
        field: dict[str, Any] = {
            "type": kind,
            "label": {"da": f"Felt {index}", "en": f"Field {index}"},
            "source": draw(st.sampled_from(["application", "caseworker"])),
        }
        if kind == "integer":
            low = draw(st.integers(0, 10))
            field.update(min=low, max=low + draw(st.integers(0, 10)))
        if kind == "enum":
            values = draw(st.lists(identifiers, min_size=1, max_size=3, unique=True))
            field["options"] = [{"value": value, "label": {"da": value, "en": value}} for value in values]
        if field["source"] == "application" and draw(st.booleans()):
            field["required"] = True
        new_fields[f"extra_field_{index}"] = field
    caseworker_fields = [name for name, field in new_fields.items() if field["source"] == "caseworker"]

    changes_list = []
    for index in range(draw(st.integers(0, 3))):
        step: dict[str, Any] = {
            "id": f"extra_step_{index}",
            "kind": "task",
            "role": draw(st.sampled_from(["caseworker", "approver"])),
            "label": {"da": f"Trin {index}", "en": f"Step {index}"},
        }
        if caseworker_fields:
            step["form"] = [{"field": name, "required": draw(st.booleans())} for name in caseworker_fields]
        if draw(st.booleans()):
            step["required"] = False
        operation = draw(st.sampled_from(["insert_after", "insert_before"]))
        anchor = draw(st.sampled_from([s for s in SKELETON_STEPS if s != "closing_check"] + ["closing_check"]))
        changes_list.append({operation: anchor, "step": step})
    if draw(st.booleans()):
        changes_list.append({"remove": "consultation"})

    document: dict[str, Any] = {
        "process": "valid-demo",
        "extends": "afgoerelse",
        "title": {"da": "Gyldig", "en": "Valid"},
        "legal_basis": [{"title": {"da": "Lov", "en": "Act"}, "reference": "§ 1"}],
        "classification": "01.02.03",
        "fields": new_fields,
        "steps": changes_list,
    }
    if draw(st.booleans()):
        document["processing_deadline"] = {
            "value": draw(st.integers(1, 60)),
            "unit": draw(st.sampled_from(["calendar_days", "weeks", "months", "working_days"])),
        }
    return document


@SETTINGS
@given(document=valid_processes())
def test_valid_processes_validate_and_compile(tmp_path: Path, document: dict[str, Any]) -> None:
    root = _root(tmp_path, "valid")
    target = root / "processes" / "afgoerelse" / "valid-demo.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    loaded = load_definitions(root)

    assert [problem.format("en") for problem in loaded.errors] == []
    process = loaded.compiled["valid-demo"]
    inserted = {change["step"]["id"] for change in document["steps"] if "step" in change}
    compiled_steps = {step.id for phase in process.phases.values() for step in phase.steps}
    assert inserted <= compiled_steps
    assert process.advance("screening", process.guard_context({"application_complete": True}, {}, date(2026, 12, 4)))
