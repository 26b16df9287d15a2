"""The JSON Schema files in schemas/: up to date, named by every YAML file, and matching the shipped YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.definitions.schema import DIALECT, REGENERATE, SCHEMAS_DIR, main, render_schemas, stale_schemas
from engine.definitions.source import load_source
from tests.helpers import REPOSITORY

SKELETON_FILES = sorted((REPOSITORY / "skeletons").rglob("*.yaml"))
PROCESS_FILES = sorted((REPOSITORY / "processes").rglob("*.yaml"))


def load_schema(filename: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS_DIR / filename).read_text(encoding="utf-8"))
    return schema


def read_yaml(path: Path) -> dict[str, Any]:
    source, problems = load_source(path)
    assert problems == [], [problem.format("en") for problem in problems]
    assert source is not None
    data: dict[str, Any] = source.data
    return data


def schema_mismatches(value: Any, schema: dict[str, Any], defs: dict[str, Any], path: str = "") -> list[str]:
    """List the keys of `value` that `schema` does not allow, and the required keys it lacks.

    It follows `$ref`, `anyOf`, `properties`, `patternProperties`, `additionalProperties`,
    `required` and `items`, which is all the generated schemas use for mappings and lists.
    Scalar types and patterns are not checked, because `jsonschema` is not installed.
    """
    if "$ref" in schema:
        schema = defs[schema["$ref"].removeprefix("#/$defs/")]
    if "anyOf" in schema:
        results = [schema_mismatches(value, option, defs, path) for option in schema["anyOf"]]
        return min(results, key=len)
    if isinstance(value, dict):
        if schema.get("type") not in (None, "object"):
            return [f"{path or '(root)'}: a mapping where the schema expects {schema['type']}"]
        found = [f"{path}.{key}".lstrip(".") + ": missing" for key in schema.get("required", []) if key not in value]
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for key, item in value.items():
            where = f"{path}.{key}".lstrip(".")
            if key in properties:
                found += schema_mismatches(item, properties[key], defs, where)
            elif patterns:
                found += schema_mismatches(item, next(iter(patterns.values())), defs, where)
            elif schema.get("additionalProperties") is False:
                found.append(f"{where}: not allowed")
        return found
    if isinstance(value, list) and "items" in schema:
        return [
            problem
            for index, item in enumerate(value)
            for problem in schema_mismatches(item, schema["items"], defs, f"{path}.{index}")
        ]
    return []


def test_checked_in_schemas_are_up_to_date() -> None:
    stale = [path.name for path in stale_schemas(SCHEMAS_DIR)]

    assert stale == [], f"stale schema files {stale}; run `{REGENERATE}` and commit the result"


@pytest.mark.parametrize("filename", ["skeleton.schema.json", "process.schema.json"])
def test_schema_has_dialect_and_title(filename: str) -> None:
    schema = load_schema(filename)

    assert schema["$schema"] == DIALECT
    assert schema["title"].startswith("Sagsflow ")
    assert schema["additionalProperties"] is False


def test_rendering_is_stable() -> None:
    first = render_schemas()
    second = render_schemas()

    assert first == second
    for text in first.values():
        assert text.endswith("}\n")
        assert json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text


def test_check_reports_stale_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--output", str(tmp_path)]) == 0
    (tmp_path / "process.schema.json").write_text("{}\n", encoding="utf-8")

    assert main(["--check", "--output", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error == (
        f"{tmp_path / 'process.schema.json'} is missing or out of date; run `{REGENERATE}` to regenerate it.\n"
    )


def test_check_reports_missing_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--output", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "skeleton.schema.json is missing or out of date" in error
    assert "process.schema.json is missing or out of date" in error


def test_check_passes_after_writing(tmp_path: Path) -> None:
    assert main(["--output", str(tmp_path)]) == 0
    assert main(["--check", "--output", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["process.schema.json", "skeleton.schema.json"]


@pytest.mark.parametrize("path", SKELETON_FILES, ids=lambda path: path.name)
def test_skeleton_names_its_schema(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]

    assert first_line == "# yaml-language-server: $schema=../schemas/skeleton.schema.json"


@pytest.mark.parametrize("path", PROCESS_FILES, ids=lambda path: path.name)
def test_process_names_its_schema(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    # The comment is relative to the file, so a process must sit exactly two folders below the root.
    depth = len(path.relative_to(REPOSITORY).parts) - 1

    assert depth == 2
    assert first_line == "# yaml-language-server: $schema=../../schemas/process.schema.json"


def test_shipped_files_exist() -> None:
    assert SKELETON_FILES
    assert PROCESS_FILES


@pytest.mark.parametrize(
    ("path", "filename"),
    [(path, "skeleton.schema.json") for path in SKELETON_FILES]
    + [(path, "process.schema.json") for path in PROCESS_FILES],
    ids=lambda value: value.name if isinstance(value, Path) else value,
)
def test_shipped_yaml_matches_schema(path: Path, filename: str) -> None:
    schema = load_schema(filename)
    data = read_yaml(path)

    assert set(data) <= set(schema["properties"])
    assert schema_mismatches(data, schema, schema["$defs"]) == []


def test_schema_check_finds_unknown_nested_key() -> None:
    schema = load_schema("process.schema.json")
    data = read_yaml(REPOSITORY / "processes" / "afgoerelse" / "cites-import.yaml")
    data["fields"]["species"]["colour"] = "green"
    del data["title"]

    assert schema_mismatches(data, schema, schema["$defs"]) == ["title: missing", "fields.species.colour: not allowed"]
