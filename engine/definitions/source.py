"""Read a YAML definition file into plain Python values, keeping the position of every node.

ruamel.yaml composes the node graph (YAML 1.2, so `no` and `on` stay strings); this module
constructs the values itself so that it can:

- record the line and column of every key and value under its path, such as
  `("phases", 2, "steps", 0, "role")`, for error messages;
- report duplicate keys with both lines instead of keeping the last one;
- bound the number of nodes walked, so aliases of aliases ("billion laughs") stop early;
- reject numbers with a leading zero, which YAML silently turns into another value;
- keep the text of every number, date and boolean as written, so that a message can show
  `09.05` and not the number 9.05 that YAML reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from engine.definitions.problems import Location, Problem, make_problem
from engine.i18n import Text

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 200_000

Loc = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Plain words that YAML 1.1 tools read as booleans; YAML 1.2, which Sagsflow reads, keeps them as text.
_YAML11_BOOLEAN = re.compile(r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$")
# Scalar kinds whose value differs from the text written, so the text is kept for messages.
_CONVERTED_KINDS = frozenset({"int", "float", "bool", "timestamp"})
_TOO_DEEP = Text("indlejringen er for dyb", "the nesting is too deep")
_INVALID_YAML = Text("ugyldig YAML", "invalid YAML")


@dataclass
class SourceFile:
    """A parsed definition file: its values and where each of them was written."""

    path: Path
    display: str
    data: Any
    value_positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    # The text as written of each number, date and boolean: values by path, keys by the key's path.
    scalar_texts: dict[Loc, str] = field(default_factory=dict)
    key_texts: dict[Loc, str] = field(default_factory=dict)
    # Each whole number written with a leading zero (SF107), by position: its path, or None
    # for a mapping key, and the text as written. The loader uses it to tell a number from a code.
    leading_zeros: dict[Location, tuple[Loc | None, str]] = field(default_factory=dict)

    def location(self, loc: Loc, *, key: bool = False) -> Location:
        """Return the position of the node at `loc`, or of its nearest written ancestor.

        With `key=True` the position of the mapping key is preferred, which is where an
        editor should point for an unknown key.
        """
        for end in range(len(loc), -1, -1):
            prefix = loc[:end]
            table = self.key_positions if key else self.value_positions
            position = table.get(prefix) or self.value_positions.get(prefix)
            if position is not None:
                return Location(self.display, position[0], position[1])
        return Location(self.display, 1, 1)


class _TooManyNodes(Exception):
    pass


class _Constructor:
    def __init__(self, source: SourceFile) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.count = 0

    def _where(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.source.display, mark.line + 1, mark.column + 1)

    def build(self, node: Node, loc: Loc) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooManyNodes
        mark = node.start_mark
        self.source.value_positions.setdefault(loc, (mark.line + 1, mark.column + 1))

        if isinstance(node, MappingNode):
            self._check_collection_tag(node, "map")
            return self._mapping(node, loc)
        if isinstance(node, SequenceNode):
            self._check_collection_tag(node, "seq")
            return [self.build(item, (*loc, index)) for index, item in enumerate(node.value)]
        if isinstance(node, ScalarNode):
            if str(node.tag).removeprefix(_TAG) in _CONVERTED_KINDS:
                self.source.scalar_texts[loc] = node.value
            return self._scalar(node, loc)
        raise TypeError(f"unexpected YAML node {node!r}")  # pragma: no cover - composer never yields others

    def _check_collection_tag(self, node: Node, kind: str) -> None:
        # A tag such as `!custom {...}` or `!!set` would otherwise be read as a plain mapping or list.
        tag = str(node.tag)
        if tag != _TAG + kind:
            self.problems.append(make_problem("SF106", self._where(node), tag=tag))

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        merged: dict[Any, Any] = {}

        for key_node, value_node in node.value:
            if str(key_node.tag) == _TAG + "merge":
                merged.update(self._merge_sources(value_node, loc))
                continue
            key = self._scalar(key_node) if isinstance(key_node, ScalarNode) else None
            if key is None or isinstance(key, list | dict):
                detail = Text("en nøgle skal være en enkel værdi", "a key must be a plain value")
                self.problems.append(make_problem("SF100", self._where(key_node), detail=detail))
                continue
            key_loc = (*loc, key) if isinstance(key, str | int) else (*loc, str(key))
            line = key_node.start_mark.line + 1
            if key in first_line:
                self.problems.append(make_problem("SF101", self._where(key_node), key=key, first_line=first_line[key]))
                continue
            first_line[key] = line
            self.source.key_positions[key_loc] = (line, key_node.start_mark.column + 1)
            if str(key_node.tag).removeprefix(_TAG) in _CONVERTED_KINDS:
                self.source.key_texts[key_loc] = key_node.value
            result[key] = self.build(value_node, key_loc)

        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def _merge_sources(self, node: Node, loc: Loc) -> dict[Any, Any]:
        # `<<: *anchor` or `<<: [*a, *b]`; earlier sources win, explicit keys win over all.
        sources = node.value if isinstance(node, SequenceNode) else [node]
        merged: dict[Any, Any] = {}
        for source in sources:
            if not isinstance(source, MappingNode):
                detail = Text("'<<' skal flette en mapping", "'<<' must merge a mapping")
                self.problems.append(make_problem("SF100", self._where(source), detail=detail))
                continue
            for key, value in self._mapping(source, loc).items():
                merged.setdefault(key, value)
        return merged

    def _scalar(self, node: ScalarNode, loc: Loc | None = None) -> Any:
        """Construct a scalar; `loc` is its path, or None for a mapping key."""
        tag = str(node.tag)
        value: str = node.value
        if not tag.startswith(_TAG):
            self.problems.append(make_problem("SF106", self._where(node), tag=tag))
            return value
        kind = tag[len(_TAG) :]
        if kind == "str":
            if node.style is None and _YAML11_BOOLEAN.match(value):
                self.problems.append(make_problem("SF112", self._where(node), value=value))
            return value
        if kind == "null":
            return None
        if kind == "bool":
            return value.lower() == "true"
        if kind == "int":
            return self._int(node, value, loc)
        if kind == "float":
            return self._float(value)
        if kind == "timestamp":
            return self._timestamp(node, value)
        self.problems.append(make_problem("SF106", self._where(node), tag=tag))
        return value

    def _int(self, node: ScalarNode, value: str, loc: Loc | None) -> int:
        text = value.replace("_", "")
        lowered = text.lower().lstrip("+-")
        sign = -1 if text.startswith("-") else 1
        if lowered.startswith("0x"):
            return sign * int(lowered[2:], 16)
        if lowered.startswith("0o"):
            return sign * int(lowered[2:], 8)
        if lowered.startswith("0b"):
            return sign * int(lowered[2:], 2)
        if _LEADING_ZERO.match(value):
            where = self._where(node)
            self.problems.append(make_problem("SF107", where, value=value))
            self.source.leading_zeros[where] = (loc, value)
        return int(text, 10)

    @staticmethod
    def _float(value: str) -> float:
        lowered = value.lower().replace("_", "")
        if lowered.endswith(".inf"):
            return float("-inf") if lowered.startswith("-") else float("inf")
        if lowered == ".nan":
            return float("nan")
        return float(lowered)

    def _timestamp(self, node: ScalarNode, value: str) -> date | datetime | str:
        try:
            if _DATE.match(value):
                return date.fromisoformat(value)
            return datetime.fromisoformat(value.replace("t", "T").replace(" ", "T", 1))
        except ValueError:
            detail = Text(f"'{value}' er ikke en gyldig dato", f"'{value}' is not a valid date")
            hint = Text(
                f"Skriv en dato, der findes, som ÅÅÅÅ-MM-DD, eller sæt anførselstegn om værdien, hvis den er tekst: "
                f"'{value}'.",
                f"Write a date that exists as YYYY-MM-DD, or put quotes around the value if it is text: '{value}'.",
            )
            self.problems.append(make_problem("SF100", self._where(node), detail=detail, hint=hint))
            return value


def _position(text: str, index: int) -> tuple[int, int]:
    """Return the 1-based line and column of the character at `index` in `text`."""
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def _yaml_error(source: SourceFile, error: YAMLError, text: str) -> Problem:
    if isinstance(error, ReaderError) and isinstance(error.character, int):
        # The reader rejects control characters such as NUL before parsing. Because ruamel was
        # given a str, `position` is the index of the character in that text.
        line, column = _position(text, int(error.position))
        code = f"U+{error.character:04X}"
        detail = Text(f"tegnet {code} må ikke stå i en YAML-fil", f"the character {code} is not allowed in a YAML file")
        return make_problem("SF100", Location(source.display, line, column), detail=detail)
    if isinstance(error, MarkedYAMLError) and error.problem_mark is not None:
        line = error.problem_mark.line + 1
        column = error.problem_mark.column + 1
        location = Location(source.display, line, column)
        lines = text.splitlines()
        if 0 < line <= len(lines):
            current = lines[line - 1]
            indentation = current[: len(current) - len(current.lstrip(" \t"))]
            if "\t" in indentation or "\t" in (error.problem or ""):
                return make_problem("SF110", location)
        # The parser's description is English; the catalog message puts a Danish sentence before it.
        if not error.problem:
            return make_problem("SF100", location, detail=_INVALID_YAML)
        described = f"{error.problem} ({error.context})" if error.context else error.problem
        return make_problem("SF100", location, detail=described)
    return make_problem("SF100", Location(source.display), detail=str(error).strip() or _INVALID_YAML)


def load_source(path: Path, display: str | None = None) -> tuple[SourceFile | None, list[Problem]]:
    """Read and parse one definition file; return it with the problems found, or None if unreadable."""
    display = display or str(path)
    source = SourceFile(path=path, display=display, data=None)
    location = Location(display)

    raw = path.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        return None, [make_problem("SF104", location, size=len(raw), limit=MAX_FILE_BYTES)]
    if raw.startswith(b"\xef\xbb\xbf"):
        return None, [make_problem("SF109", location)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        return None, [make_problem("SF102", Location(display, line, column), offset=error.start)]
    if not text.strip():
        return None, [make_problem("SF103", location)]

    try:
        node = YAML(typ="safe", pure=True).compose(text)
    except YAMLError as error:
        return None, [_yaml_error(source, error, text)]
    except RecursionError:
        return None, [make_problem("SF100", location, detail=_TOO_DEEP)]
    if node is None:
        return None, [make_problem("SF103", location)]

    constructor = _Constructor(source)
    try:
        source.data = constructor.build(node, ())
    except _TooManyNodes:
        return None, [make_problem("SF105", location, limit=MAX_NODES)]
    except RecursionError:
        return None, [make_problem("SF100", location, detail=_TOO_DEEP)]
    if not isinstance(source.data, dict):
        constructor.problems.append(make_problem("SF108", location))
    return source, constructor.problems
