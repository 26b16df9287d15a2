"""The definitions cache, the catalog it preloads at start-up, and examples built from a field schema."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from engine.definitions.cache import cache_key, cached_only, load_cached
from engine.definitions.compile import CompiledProcess
from engine.definitions.examples import NoExample, example_application, example_value
from engine.definitions.loader import LoadedDefinitions, load_definitions
from engine.service import Sagsflow
from tests.helpers import FIRST_OF_A_KIND, REPOSITORY


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "definitions"
    shutil.copytree(REPOSITORY / "skeletons", root / "skeletons")
    for name in FIRST_OF_A_KIND[:2]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPOSITORY / name, root / name)
        folder = (REPOSITORY / name).with_suffix("")
        if folder.is_dir():
            shutil.copytree(folder, (root / name).with_suffix(""))
    return root


def test_hit_gives_the_same_definitions(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"

    first, first_hit = load_cached(root, None, cache)
    second, second_hit = load_cached(root, None, cache)

    assert (first_hit, second_hit) == (False, True)
    assert sorted(second.compiled) == sorted(first.compiled) == ["cites-import", "klap-tilladelse"]
    for process_id, process in first.compiled.items():
        assert second.compiled[process_id].content_hash == process.content_hash
        assert second.compiled[process_id].definition == process.definition
    assert second.files == first.files
    assert sorted(second.skeletons) == sorted(first.skeletons)
    assert oct((cache).stat().st_mode & 0o777) == oct(0o700)


@pytest.mark.parametrize(
    "name",
    [
        "processes/afgoerelse/cites-import.yaml",
        "processes/afgoerelse/cites-import/decision.da.md.j2",
        "skeletons/afgoerelse.yaml",
    ],
)
def test_any_changed_file_misses(root: Path, tmp_path: Path, name: str) -> None:
    cache = tmp_path / "cache"
    load_cached(root, None, cache)
    before = cache_key(root)

    path = root / name
    path.write_text(path.read_text(encoding="utf-8") + "\n# en kommentar\n", encoding="utf-8")

    assert cache_key(root) != before
    assert cached_only(root, cache) is None
    _, hit = load_cached(root, None, cache)
    assert hit is False


def test_broken_process_is_reported_from_the_cache_too(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = root / "processes/afgoerelse/klap-tilladelse.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("type: harbour", "type: havn"), encoding="utf-8")

    cold, _ = load_cached(root, None, cache)
    warm, hit = load_cached(root, None, cache)

    assert hit is True
    assert [problem.format("en") for problem in warm.errors] == [problem.format("en") for problem in cold.errors]
    assert any(problem.code == "SF304" for problem in warm.errors)
    assert "klap-tilladelse" not in warm.compiled


def test_foreign_or_corrupt_entry_is_ignored(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_cached(root, None, cache)
    (entry,) = cache.glob("definitions-*.pickle")

    entry.write_bytes(b"not a pickle")
    assert cached_only(root, cache) is None

    load_cached(root, None, cache)
    os.chmod(entry, 0o666)  # noqa: S103 - the test makes the entry writable by others on purpose
    # A file others may write is not read: a pickle runs code when it is loaded.
    assert cached_only(root, cache) is None


def test_requested_paths_are_part_of_the_key(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    single_path = [root / FIRST_OF_A_KIND[0]]

    everything, _ = load_cached(root, None, cache)
    only_one, hit = load_cached(root, single_path, cache)

    assert hit is False
    assert sorted(only_one.compiled) == sorted(load_definitions(root, single_path).compiled) == ["cites-import"]
    assert len(everything.compiled) == 2


def test_warm_up_takes_preloaded_processes_by_content_hash(service: Sagsflow, definitions: LoadedDefinitions) -> None:
    from_files = definitions.compiled["cites-import"]
    stale = CompiledProcess(from_files.definition, "0" * 64)

    ready = Sagsflow(service.database, service.services).warm_up([from_files, stale])
    fresh = Sagsflow(service.database, service.services)
    fresh.warm_up([from_files])

    assert ready == len(definitions.compiled)
    with fresh.database.read() as session:
        _, process = fresh.catalog.latest(session, "cites-import")
        _, other = fresh.catalog.latest(session, "klap-tilladelse")
    assert process is from_files
    assert other is not definitions.compiled["klap-tilladelse"]
    assert other.content_hash == definitions.compiled["klap-tilladelse"].content_hash


def test_example_for_pattern_field(definitions: LoadedDefinitions) -> None:
    process = definitions.compiled["cites-import"].definition
    field = process.fields["applicant_name"].model_copy(update={"pattern": "^[A-Z]+$"})
    optional = field.model_copy(update={"required": False})
    today = date(2026, 12, 4)

    with pytest.raises(NoExample) as missing:
        example_application(process.model_copy(update={"fields": {**process.fields, "applicant_name": field}}), today)
    skipped = example_application(
        process.model_copy(update={"fields": {**process.fields, "applicant_name": optional}}), today
    )

    assert missing.value.field_id == "applicant_name"
    assert "applicant_name" not in skipped
    assert skipped["country_of_export"] == "TG"
    assert example_value("x", field.model_copy(update={"example": "ABC"}), today) == "ABC"


def test_changed_file_outside_the_root_misses(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    outside = tmp_path / "elsewhere" / "cites-kopi.yaml"
    outside.parent.mkdir()
    text = (root / FIRST_OF_A_KIND[0]).read_text(encoding="utf-8")
    outside.write_text(text.replace("process: cites-import", "process: cites-kopi"), encoding="utf-8")
    first, _ = load_cached(root, [outside], cache)
    assert not any(problem.code == "SF304" for problem in first.errors)

    outside.write_text(outside.read_text(encoding="utf-8").replace("type: species", "type: art"), encoding="utf-8")
    loaded, hit = load_cached(root, [outside], cache)

    assert hit is False
    assert any(problem.code == "SF304" for problem in loaded.errors)
