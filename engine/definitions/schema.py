"""JSON Schema (draft 2020-12) for skeleton and process files, generated from the pydantic models.

Every shipped YAML file names its schema in its first line, for example
`# yaml-language-server: $schema=../schemas/skeleton.schema.json`, so that editors with
the YAML language server complete keys and flag unknown ones while the file is typed.
The schema covers the shape of a file only; `sagsflow validate` runs the semantic checks.

    python -m engine.definitions.schema          # write schemas/*.schema.json
    python -m engine.definitions.schema --check  # exit 1 when a checked-in schema is stale

The files are written with sorted keys and a trailing newline, so the same models always
give the same bytes and a stale schema shows up as a diff.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.definitions.model import ProcessDef, SkeletonDef

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
REGENERATE = "python -m engine.definitions.schema"


@dataclass(frozen=True)
class SchemaFile:
    filename: str
    model: type[BaseModel]
    title: str
    description: str


SCHEMA_FILES: tuple[SchemaFile, ...] = (
    SchemaFile(
        "skeleton.schema.json",
        SkeletonDef,
        "Sagsflow skeleton",
        "A base process in skeletons/<id>.yaml: roles, fields, letters and phases that processes extend.",
    ),
    SchemaFile(
        "process.schema.json",
        ProcessDef,
        "Sagsflow process",
        "A process in processes/<skeleton>/<id>.yaml that extends one skeleton.",
    ),
)


def build_schema(schema_file: SchemaFile) -> dict[str, Any]:
    """Return the JSON Schema of one definition model, with its dialect and title."""
    schema = schema_file.model.model_json_schema()
    schema["$schema"] = DIALECT
    schema["title"] = schema_file.title
    schema["description"] = schema_file.description
    return schema


def render_schemas() -> dict[str, str]:
    """Return the text of every schema file by file name, as it is written to disk."""
    return {
        schema_file.filename: json.dumps(build_schema(schema_file), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for schema_file in SCHEMA_FILES
    }


def stale_schemas(directory: Path) -> list[Path]:
    """Return the schema files in `directory` that are missing or differ from freshly generated ones."""
    stale = []
    for filename, text in render_schemas().items():
        path = directory / filename
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
    return stale


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema file into `directory` and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in render_schemas().items():
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=REGENERATE,
        description="Generate the JSON Schema files that editors use for skeleton and process YAML.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and list the schema files that are missing or out of date",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=SCHEMAS_DIR,
        help=f"folder for the schema files (default: {SCHEMAS_DIR})",
    )
    arguments = parser.parse_args(argv)

    if arguments.check:
        stale = stale_schemas(arguments.output)
        for path in stale:
            print(f"{path} is missing or out of date; run `{REGENERATE}` to regenerate it.", file=sys.stderr)
        return 1 if stale else 0

    for path in write_schemas(arguments.output):
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
