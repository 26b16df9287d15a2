"""The agency's process catalogue: the counts per skeleton, and no two processes alike.

A process is only worth a file when its rules differ from every other's. Besides the
counts, these tests therefore compare each process with all others three ways: its file
and its resolved definition without id and titles, and its set of fields and steps.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

import pytest

from engine.definitions.cache import load_cached
from engine.definitions.loader import LoadedDefinitions
from engine.definitions.source import load_source
from tests.helpers import REPOSITORY

PROCESS_FILES = {path.stem: path for path in (REPOSITORY / "processes").glob("*/*.yaml")}
# The first-of-a-kind processes whose letters are the skeleton's own.
SKELETON_LETTERS_ONLY = {"klap-ordningssag", "natura2000-puljesag", "natura2000-sammenhaengende-arealer"}
# Pool and scheme cases configure their skeleton's fields rather than adding their own.
SKELETON_FIELDS_ONLY = {"puljesag", "ordningssag"}


@pytest.fixture(scope="module")
def loaded() -> LoadedDefinitions:
    definitions, _ = load_cached(REPOSITORY, None, REPOSITORY / "var" / "cache")
    assert not definitions.errors, [problem.format("en") for problem in definitions.errors[:5]]
    return definitions


def _duplicates(keys: dict[str, str]) -> list[list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for process_id, key in keys.items():
        groups[key].append(process_id)
    return [sorted(group) for group in groups.values() if len(group) > 1]


def test_counts_per_skeleton(loaded: LoadedDefinitions) -> None:
    counts = Counter(process.definition.skeleton for process in loaded.compiled.values())

    assert counts["afgoerelse"] == 142
    assert counts["tilskud"] == 26
    assert counts["tilsyn"] == 76
    assert counts["simpel"] >= 5
    # Each process lives in its skeleton's folder (SF322 warns otherwise, and there are no warnings).
    assert loaded.warnings == []


def test_process_files_differ(loaded: LoadedDefinitions) -> None:
    keys = {}
    for path in sorted((REPOSITORY / "processes").glob("*/*.yaml")):
        source, problems = load_source(path)
        assert source is not None, path
        assert not problems, path
        data: dict[str, Any] = dict(source.data or {})
        for key in ("process", "title"):
            data.pop(key, None)
        keys[path.stem] = json.dumps(data, sort_keys=True, default=str)

    assert _duplicates(keys) == []


def test_resolved_processes_differ(loaded: LoadedDefinitions) -> None:
    keys = {
        process_id: json.dumps(
            process.definition.model_dump(mode="json", exclude={"id", "title", "parents"}), sort_keys=True
        )
        for process_id, process in loaded.compiled.items()
    }

    assert _duplicates(keys) == []


def test_no_two_processes_share_their_fields_and_steps(loaded: LoadedDefinitions) -> None:
    keys = {}
    for process_id, process in loaded.compiled.items():
        definition = process.definition
        fields = sorted(definition.fields)
        steps = [step.id for phase in definition.phases for step in phase.steps]
        keys[process_id] = json.dumps([fields, steps])

    assert _duplicates(keys) == []


def test_every_process_carries_its_rules(loaded: LoadedDefinitions) -> None:
    missing: dict[str, list[str]] = defaultdict(list)
    for process_id, process in loaded.compiled.items():
        definition = process.definition
        if definition.portfolio is None:
            missing["portfolio"].append(process_id)
        if not definition.legal_basis:
            missing["legal_basis"].append(process_id)
        if definition.processing_deadline is None:
            missing["processing_deadline"].append(process_id)
        own_fields = [field for field in definition.fields.values() if field.origin != "skeleton"]
        if not own_fields and definition.skeleton not in SKELETON_FIELDS_ONLY:
            missing["fields of its own"].append(process_id)
        folder = f"processes/{PROCESS_FILES[process_id].parent.name}/{process_id}/"
        own_templates = [name for name in definition.templates if name.startswith(folder)]
        if not own_templates and process_id not in SKELETON_LETTERS_ONLY:
            missing["letter templates of its own"].append(process_id)

    assert dict(missing) == {}


def test_classification_codes_are_unique(loaded: LoadedDefinitions) -> None:
    codes = {process_id: process.definition.classification for process_id, process in loaded.compiled.items()}

    assert _duplicates(codes) == []
