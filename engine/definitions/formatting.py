"""`sagsflow fmt`: normalise the layout of a YAML definition, keeping comments and key order.

ruamel.yaml's round-trip mode re-emits the document with mappings indented by two
spaces and list items by four with the dash at two, the layout of the shipped files.
Comments, key order, flow mappings such as `{da: ..., en: ...}` and the quoting of
scalars are kept. Lines are never wrapped.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from ruamel.yaml import YAML

from engine.definitions.problems import Problem
from engine.definitions.source import load_source


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def format_text(text: str) -> str:
    yaml = _yaml()
    document = yaml.load(text)
    output = StringIO()
    yaml.dump(document, output)
    return output.getvalue()


def format_file(path: Path, display: str) -> tuple[str | None, list[Problem]]:
    """Return the formatted text of `path`, or None with the problems that make it unsafe to format.

    The file is first read with the definition loader, so duplicate keys, tabs, aliases that
    expand too far and similar hazards are reported the same way as by `sagsflow validate`.
    """
    source, problems = load_source(path, display)
    errors = [problem for problem in problems if problem.severity == "error"]
    if source is None or errors:
        return None, errors
    return format_text(path.read_text(encoding="utf-8")), []
