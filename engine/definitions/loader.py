"""Load a definitions folder: read, model, resolve, validate and compile every file.

The folder (the definitions root) holds `skeletons/*.yaml` and `processes/**/*.yaml`.
`load_definitions` never stops at the first problem: it returns every problem of every
file, and compiles only the processes that have none.
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from engine.definitions.compile import CompiledProcess, content_hash
from engine.definitions.model import PROCESS_ID_PATTERN, ProcessDef, ResolvedProcess, SkeletonDef
from engine.definitions.problems import Location, Problem, known_names, make_problem, pydantic_detail
from engine.definitions.resolve import LoadedProcess, LoadedSkeleton, Resolution, resolve
from engine.definitions.schemes import check_scheme
from engine.definitions.source import Loc, SourceFile, load_source
from engine.definitions.validate import validate_resolved
from engine.i18n import Text

logger = logging.getLogger(__name__)

SKELETONS_DIR = "skeletons"
PROCESSES_DIR = "processes"


@dataclass
class LoadedDefinitions:
    root: Path
    skeletons: dict[str, LoadedSkeleton] = field(default_factory=dict)
    resolutions: dict[str, Resolution] = field(default_factory=dict)
    compiled: dict[str, CompiledProcess] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # Ids of skeleton files that failed to read or model; they are not in `skeletons`.
    broken_skeletons: set[str] = field(default_factory=set)

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "warning"]


def find_root(start: Path) -> Path | None:
    """Return the nearest folder at or above `start` that has a `skeletons/` folder."""
    current = start.resolve()
    if current.is_file():
        current = current.parent
    for candidate in (current, *current.parents):
        if (candidate / SKELETONS_DIR).is_dir():
            return candidate
    return None


# Mapping pydantic errors to problems ----------------------------------------------------------


def _unwrap(annotation: Any) -> list[Any]:
    """Return the concrete types behind Annotated, Optional and unions."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [inner for arg in get_args(annotation) if arg is not type(None) for inner in _unwrap(arg)]
    return [annotation]


def _types_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[Any]:
    """Return the concrete types that the vocabulary allows at path `loc` of a `model` document."""
    current: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for candidate in current:
            for concrete in _unwrap(candidate):
                origin = get_origin(concrete)
                if isinstance(concrete, type) and issubclass(concrete, BaseModel):
                    if isinstance(part, str) and part in concrete.model_fields:
                        following.append(concrete.model_fields[part].annotation)
                elif origin is list and isinstance(part, int):
                    following.append(get_args(concrete)[0])
                elif origin is dict and isinstance(part, str):
                    following.append(get_args(concrete)[1])
        current = following
    return [concrete for candidate in current for concrete in _unwrap(candidate)]


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    for concrete in _types_at(model, loc):
        if isinstance(concrete, type) and issubclass(concrete, BaseModel):
            return concrete
    return None


def _takes_number(model: type[BaseModel], loc: Sequence[str | int]) -> bool | None:
    """Return True when the key at `loc` takes a number, False when it takes text, None when unclear."""
    kinds: set[str] = set()
    for concrete in _types_at(model, loc):
        if get_origin(concrete) in (list, dict) or (isinstance(concrete, type) and issubclass(concrete, BaseModel)):
            continue  # a number is a scalar, so only the scalar types count
        values = get_args(concrete) if get_origin(concrete) is typing.Literal else (concrete,)
        for value in values:
            if value in (int, float, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
                kinds.add("number")
            elif value is str or isinstance(value, str):
                kinds.add("text")
            else:
                kinds.add("other")
    if kinds == {"number"}:
        return True
    if kinds == {"text"}:
        return False
    return None


def _leading_zero_problems(problems: list[Problem], source: SourceFile, model: type[BaseModel]) -> list[Problem]:
    """Give each SF107 the fix for its key: drop the zeros where a number is meant, quote where text is."""
    result: list[Problem] = []
    for problem in problems:
        written = source.leading_zeros.get(problem.location) if problem.code == "SF107" else None
        takes_number: bool | None = None
        if written is not None and written[0] is not None:
            takes_number = _takes_number(model, written[0])
        if written is None or takes_number is None:
            # A mapping key, or a key that takes both numbers and text: the catalog's hint names both fixes.
            result.append(problem)
            continue
        value = written[1]
        if takes_number:
            number = str(int(value.replace("_", ""), 10))
            hint = Text(
                f"Nøglen tager et tal; skriv det uden foranstillede nuller: {number}.",
                f"The key takes a number; write it without leading zeros: {number}.",
            )
        else:
            hint = Text(
                f"Nøglen tager tekst; sæt anførselstegn om værdien: '{value}'.",
                f"The key takes text; put quotes around the value: '{value}'.",
            )
        result.append(make_problem("SF107", problem.location, value=value, hint=hint))
    return result


def _data_path(data: Any, loc: Sequence[Any]) -> Loc:
    """Keep the parts of a pydantic error location that exist in the data (drops union tags)."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            path.append(part)
            current = current[part]
        elif isinstance(current, dict | list):
            # A key the data does not have (a missing key): keep it for the message.
            path.append(part)
            current = None
    return tuple(path)


def _describe_kind(value: Any) -> Text:
    if isinstance(value, bool):
        return Text("en sandhedsværdi (boolean)", "a boolean")
    if isinstance(value, int | float):
        return Text("et tal", "a number")
    if isinstance(value, date | datetime):
        return Text("en dato", "a date")
    name = type(value).__name__
    return Text(f"en værdi af typen {name}", f"a value of type {name}")


_MAPPING_TYPES = frozenset({"model_type", "dict_type", "model_attributes_type"})


def _pattern_problem(item: Any, location: Location, dotted: str) -> Problem:
    pattern = str((item.get("ctx") or {}).get("pattern", ""))
    if pattern == PROCESS_ID_PATTERN:
        return make_problem("SF203", location, value=item["input"], separator="-")
    if "a-z" in pattern:
        return make_problem("SF203", location, value=item["input"], separator="_")
    detail = Text(f"værdien skal passe til mønstret {pattern}", f"the value must match the pattern {pattern}")
    return make_problem("SF202", location, key=dotted, detail=detail)


def _item_problem(item: Any, source: SourceFile, model: type[BaseModel], loc: Loc, on_key: bool) -> Problem:
    """Turn one pydantic error into the problem a designer can act on."""
    kind = item["type"]
    key = str(loc[-1]) if loc else "(root)"
    dotted = ".".join(str(part) for part in loc) or "(root)"
    location = source.location(loc, key=on_key)
    value = item.get("input")

    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = known_names(parent.model_fields if parent else [], key)
        return make_problem("SF200", source.location(loc, key=True), key=key, allowed=allowed)
    if kind == "missing":
        return make_problem("SF201", source.location(loc[:-1]), key=key)
    if kind == "string_pattern_mismatch" and isinstance(value, str):
        return _pattern_problem(item, location, dotted)
    if kind == "bool_type":
        shown = repr(value) if isinstance(value, str) else str(value)
        return make_problem("SF205", location, key=dotted, value=shown)
    if kind == "string_type" and isinstance(value, int | float | bool | date | datetime):
        # Show the value as written: `09.05`, not the number 9.05 that YAML read.
        written = (source.key_texts if on_key else source.scalar_texts).get(loc)
        shown = written or (str(value).lower() if isinstance(value, bool) else str(value))
        return make_problem("SF204", location, key=dotted, value=shown, kind=_describe_kind(value))
    return make_problem("SF202", location, key=dotted, detail=pydantic_detail(item))


def model_problems(error: ValidationError, source: SourceFile, model: type[BaseModel]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[Loc, str]] = set()
    items = error.errors(include_url=False)
    # A value that may be text or a mapping (e.g. `reference`) fails both ways; when it is a
    # number, date or boolean, "write it as text" is the useful message, not "not a mapping".
    text_expected = {
        _data_path(source.data, item["loc"])
        for item in items
        if item["type"] == "string_type" and isinstance(item.get("input"), int | float | bool | date | datetime)
    }
    for item in items:
        # pydantic ends the location of an invalid mapping key with "[key]"; point at the key itself.
        on_key = bool(item["loc"]) and item["loc"][-1] == "[key]"
        loc = _data_path(source.data, item["loc"][:-1] if on_key else item["loc"])
        kind = item["type"]
        if (loc, kind) in seen or (kind in _MAPPING_TYPES and loc in text_expected):
            continue
        seen.add((loc, kind))
        problems.append(_item_problem(item, source, model, loc, on_key))
    return problems


# Loading --------------------------------------------------------------------------------------


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _yaml_files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            found.append(path)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


@dataclass
class _Parsed:
    """One definition file after reading and modelling; `definition` is None when either failed."""

    definition: Any | None
    source: SourceFile | None


def _parse(path: Path, root: Path, result: LoadedDefinitions, expected: str) -> _Parsed:
    """Read and model one file that should hold a document of the `expected` kind ("skeleton" or "process")."""
    display = _display(path, root)
    result.files.append(display)
    if not path.is_file():
        detail = Text(
            "filen findes ikke eller er ikke en almindelig fil", "the file does not exist or is not a regular file"
        )
        hint = Text("Tjek stien til filen.", "Check the path to the file.")
        result.problems.append(make_problem("SF100", Location(display), detail=detail, hint=hint))
        return _Parsed(None, None)
    source, problems = load_source(path, display)
    if source is None or not isinstance(source.data, dict):
        result.problems.extend(problems)
        return _Parsed(None, source)

    data = source.data
    kind: str | None = None
    if "skeleton" in data and "process" not in data:
        kind = "skeleton"
    elif "process" in data:
        kind = "process"
    # Checked before the model, so that a process under skeletons/ is not reported as a skeleton without phases.
    if kind != expected:
        result.problems.extend(problems)
        expected_text = Text("en skeletdefinition", "a skeleton definition")
        if expected == "process":
            expected_text = Text("en procesdefinition", "a process definition")
        result.problems.append(make_problem("SF111", source.location(()), expected=expected_text))
        return _Parsed(None, source)

    model: type[BaseModel] = SkeletonDef if kind == "skeleton" else ProcessDef
    problems = _leading_zero_problems(problems, source, model)
    result.problems.extend(problems)
    try:
        definition = model.model_validate(data)
    except ValidationError as error:
        result.problems.extend(model_problems(error, source, model))
        return _Parsed(None, source)
    if any(problem.severity == "error" for problem in problems):
        return _Parsed(None, source)
    return _Parsed(definition, source)


def _skeleton_id(path: Path, source: SourceFile | None) -> str:
    """Return the id a skeleton file declares, or its file name's stem when the file has none readable."""
    declared = source.data.get("skeleton") if source is not None and isinstance(source.data, dict) else None
    return declared if isinstance(declared, str) else path.stem


def _requested_files(root: Path, paths: Sequence[Path] | None) -> list[Path]:
    if paths:
        return _yaml_files(paths)
    # A root with skeletons but no processes yet is valid; it just deploys nothing.
    return _yaml_files([root / PROCESSES_DIR]) if (root / PROCESSES_DIR).is_dir() else []


def load_definitions(root: Path, paths: Sequence[Path] | None = None) -> LoadedDefinitions:
    """Load every skeleton under `root` and the processes in `paths` (default: all of them)."""
    result = LoadedDefinitions(root=root)

    skeleton_files = _yaml_files([root / SKELETONS_DIR])
    requested = _requested_files(root, paths)
    skeleton_paths = {path.resolve() for path in skeleton_files}
    process_files = [path for path in requested if path.resolve() not in skeleton_paths]

    # Where each skeleton id is declared, including skeletons that failed to read or model.
    skeleton_origin: dict[str, Location] = {}
    for path in skeleton_files:
        parsed = _parse(path, root, result, "skeleton")
        if parsed.definition is None or parsed.source is None:
            # Its own problems are reported, so processes extending it get no SF300 (unknown skeleton).
            skeleton_id = _skeleton_id(path, parsed.source)
            result.broken_skeletons.add(skeleton_id)
            where = parsed.source.location(("skeleton",)) if parsed.source else Location(_display(path, root))
            skeleton_origin.setdefault(skeleton_id, where)
            continue
        definition, source = parsed.definition, parsed.source
        location = source.location(("skeleton",))
        if definition.skeleton in result.skeletons:
            result.problems.append(
                make_problem(
                    "SF301",
                    location,
                    kind=Text("Skelet", "Skeleton"),
                    name=definition.skeleton,
                    first=skeleton_origin[definition.skeleton],
                )
            )
            continue
        skeleton_origin[definition.skeleton] = location
        result.skeletons[definition.skeleton] = LoadedSkeleton(definition, source)

    # Every skeleton is validated on its own, so a skeleton error is reported once, at its line.
    # A skeleton with an error, in its YAML file or in a letter template, compiles no process.
    error_files = {p.location.file for p in result.errors}
    skeletons_with_errors: set[str] = set()
    for skeleton_id, skeleton in result.skeletons.items():
        bare = resolve(skeleton, None, root)
        problems = list(bare.problems)
        if bare.process is not None:
            problems.extend(validate_resolved(bare.process, bare.sources))
        result.problems.extend(problems)
        if skeleton.source.display in error_files or any(p.severity == "error" for p in problems):
            skeletons_with_errors.add(skeleton_id)

    # Every process file is read, so a requested process can extend one that was not requested;
    # problems are reported only for the requested files and the processes they extend.
    requested_files = {path.resolve() for path in process_files}
    all_files = _yaml_files([root / PROCESSES_DIR]) if (root / PROCESSES_DIR).is_dir() else []
    by_path = {path.resolve(): path for path in [*all_files, *process_files] if path.resolve() not in skeleton_paths}
    index = _ProcessIndex(skeleton_origin)
    for resolved_path, path in sorted(by_path.items()):
        scratch = LoadedDefinitions(root=root)
        parsed = _parse(path, root, scratch, "process")
        index.add(resolved_path, parsed, scratch)

    reported: set[Path] = set()
    for resolved_path in sorted(requested_files):
        reported.add(resolved_path)
        reported |= index.ancestor_paths(resolved_path)
    for resolved_path in sorted(reported):
        index.report_file(resolved_path, result)
    for resolved_path in sorted(requested_files):
        process = index.by_path.get(resolved_path)
        if process is not None and index.is_first(process):
            _load_process(process, root, result, index, skeletons_with_errors)

    result.problems = _deduplicate(result.problems)
    return result


class _ProcessIndex:
    """Every parsed process file, by path and by process id, with the problems of each file.

    Process ids and skeleton ids share one namespace, because `extends` names either. A
    process whose id is a skeleton's is reported and left out, so `extends` still finds the
    skeleton.
    """

    def __init__(self, skeleton_origin: dict[str, Location]) -> None:
        self.skeleton_origin = skeleton_origin
        self.by_path: dict[Path, LoadedProcess] = {}
        self.by_id: dict[str, LoadedProcess] = {}
        self.file_results: dict[Path, LoadedDefinitions] = {}
        self.duplicates: dict[Path, Problem] = {}

    def add(self, path: Path, parsed: _Parsed, scratch: LoadedDefinitions) -> None:
        self.file_results[path] = scratch
        if parsed.definition is None or parsed.source is None:
            return
        definition, source = parsed.definition, parsed.source
        skeleton = self.skeleton_origin.get(definition.process)
        if skeleton is not None:
            self.duplicates[path] = make_problem(
                "SF301",
                source.location(("process",)),
                kind=Text("Proces", "Process"),
                name=definition.process,
                first=Text(f"skelettet {skeleton}", f"the skeleton {skeleton}"),
                hint=Text(
                    "Processer og skeletter deler id'er, fordi 'extends' kan nævne begge; giv processen et andet id.",
                    "Processes and skeletons share ids, because 'extends' can name either; give the process "
                    "another id.",
                ),
            )
            return
        process = LoadedProcess(definition, source)
        first = self.by_id.get(definition.process)
        if first is not None:
            self.duplicates[path] = make_problem(
                "SF301",
                source.location(("process",)),
                kind=Text("Proces", "Process"),
                name=definition.process,
                first=first.source.location(("process",)),
            )
            return
        self.by_path[path] = process
        self.by_id[definition.process] = process

    def is_first(self, process: LoadedProcess) -> bool:
        return self.by_id.get(process.definition.process) is process

    def report_file(self, path: Path, result: LoadedDefinitions) -> None:
        scratch = self.file_results.get(path)
        if scratch is not None:
            result.files.extend(scratch.files)
            result.problems.extend(scratch.problems)
        if path in self.duplicates:
            result.problems.append(self.duplicates[path])

    def chain(self, process: LoadedProcess) -> tuple[list[LoadedProcess], list[str] | None]:
        """Return the processes `process` extends (nearest first) and, if they loop, the loop's ids."""
        ancestors: list[LoadedProcess] = []
        seen = [process.definition.process]
        current = process
        while current.definition.extends in self.by_id:
            parent = self.by_id[current.definition.extends]
            if parent.definition.process in seen:
                return ancestors, [*seen[seen.index(parent.definition.process) :], parent.definition.process]
            ancestors.append(parent)
            seen.append(parent.definition.process)
            current = parent
        return ancestors, None

    def resolved(
        self,
        process_id: str,
        *,
        root: Path,
        skeletons: dict[str, LoadedSkeleton],
        resolutions: dict[str, Resolution],
    ) -> ResolvedProcess | None:
        """Resolve the process `process_id` for a check that needs it beside another, without its problems.

        Its own problems are reported when it is loaded itself. Returns None for an unknown
        id, and for a process whose chain loops or ends in no usable skeleton.
        """
        if process_id in resolutions:
            return resolutions[process_id].process
        process = self.by_id.get(process_id)
        if process is None:
            return None
        ancestors, cycle = self.chain(process)
        skeleton = skeletons.get((ancestors[-1] if ancestors else process).definition.extends)
        if cycle is not None or skeleton is None:
            return None
        return resolve(skeleton, process, root, list(reversed(ancestors))).process

    def ancestor_paths(self, path: Path) -> set[Path]:
        process = self.by_path.get(path)
        if process is None:
            return set()
        ancestors, _ = self.chain(process)
        return {ancestor.source.path.resolve() for ancestor in ancestors}


def _load_process(
    process: LoadedProcess,
    root: Path,
    result: LoadedDefinitions,
    index: _ProcessIndex,
    skeletons_with_errors: set[str],
) -> None:
    definition, source = process.definition, process.source
    ancestors, cycle = index.chain(process)
    if cycle is not None:
        result.problems.append(
            make_problem("SF330", source.location(("extends",)), name=definition.process, cycle=" → ".join(cycle))
        )
        return
    base_id = (ancestors[-1] if ancestors else process).definition.extends
    skeleton = result.skeletons.get(base_id)
    if skeleton is None and base_id in result.broken_skeletons:
        return
    if skeleton is None:
        culprit = ancestors[-1] if ancestors else process
        result.problems.append(
            make_problem(
                "SF300",
                culprit.source.location(("extends",)),
                name=base_id,
                known=", ".join(sorted(result.skeletons)),
            )
        )
        return
    folder = Path(source.display).parent.name
    if Path(source.display).parts[:1] == (PROCESSES_DIR,) and folder != skeleton.definition.skeleton:
        result.problems.append(
            make_problem(
                "SF322",
                source.location(("process",)),
                name=definition.process,
                skeleton=skeleton.definition.skeleton,
                folder=folder,
            )
        )

    resolution = resolve(skeleton, process, root, list(reversed(ancestors)))
    problems = list(resolution.problems)
    if resolution.process is not None:
        problems.extend(validate_resolved(resolution.process, resolution.sources))
        if resolution.process.scheme is not None:
            peers = partial(index.resolved, root=root, skeletons=result.skeletons, resolutions=result.resolutions)
            problems.extend(check_scheme(resolution.process, resolution.sources, peers, index.by_id))
    result.problems.extend(problems)
    result.resolutions[definition.process] = resolution

    ancestor_files = {ancestor.source.display for ancestor in ancestors}
    blocked = (
        any(p.severity == "error" for p in problems)
        or skeleton.definition.skeleton in skeletons_with_errors
        or any(p.severity == "error" and p.location.file in ancestor_files for p in result.problems)
    )
    if resolution.process is not None and not blocked:
        result.compiled[definition.process] = CompiledProcess(resolution.process, content_hash(resolution.process))


def _deduplicate(problems: list[Problem]) -> list[Problem]:
    unique: dict[tuple[str, str, int, int, str], Problem] = {}
    for problem in problems:
        key = (problem.code, problem.location.file, problem.location.line, problem.location.column, problem.text.en)
        unique.setdefault(key, problem)
    return sorted(unique.values(), key=lambda p: (p.location.file, p.location.line, p.location.column, p.code))
