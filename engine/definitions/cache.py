"""A cache of loaded definitions, keyed by the content of every file they come from.

Loading the agency's 250 processes reads, resolves and validates about 750 files, which
takes seconds. The result depends only on those files and on the engine's own code, so
`load_cached` hashes both and keeps the result in `<cache dir>/definitions-<key>.pickle`.
Any change to a YAML file, a template or the engine's Python gives a new key, and the
old entry is never read again (the oldest entries are removed). The compiled processes
are rebuilt from the cached resolved definitions, which takes milliseconds.

The key covers every file under `skeletons/` and `processes/`, not only the requested
ones, because a process may extend another process and a template may include any
file under the root.

A pickle can run code when it is read. The cache directory is therefore created with
mode 0700, and an entry is read only when it is a regular file of the server's user
that no one else may write. An unreadable or corrupt entry
is ignored and the definitions are loaded from the files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from engine.definitions.compile import CompiledProcess
from engine.definitions.loader import PROCESSES_DIR, SKELETONS_DIR, LoadedDefinitions, load_definitions
from engine.definitions.model import ResolvedProcess

logger = logging.getLogger(__name__)

# Bump when the layout of a cache entry changes.
CACHE_FORMAT = "1"
KEEP_ENTRIES = 4
ENGINE_ROOT = Path(__file__).resolve().parent.parent


def _engine_digest() -> str:
    """Hash of the engine's Python sources: validation rules and the models live there."""
    digest = hashlib.sha256()
    for path in sorted(ENGINE_ROOT.rglob("*.py")):
        digest.update(str(path.relative_to(ENGINE_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(root: Path, paths: Sequence[Path] | None = None) -> str:
    """Return the key of the definitions under `root`, which changes when any file or the engine changes."""
    digest = hashlib.sha256()
    digest.update(f"format {CACHE_FORMAT}\n".encode())
    digest.update(_engine_digest().encode())
    resolved_root = root.resolve()
    requested = sorted(path.resolve() for path in paths) if paths else []
    digest.update("\n".join(str(path) for path in requested).encode() if paths else b"*")
    # A requested file may lie outside the root, so its content is part of the key too.
    for path in requested:
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                digest.update(f"\n{file}\n".encode())
                digest.update(file.read_bytes())
    for folder in (SKELETONS_DIR, PROCESSES_DIR):
        base = resolved_root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file():
                digest.update(f"\n{path.relative_to(resolved_root)}\n".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _trusted(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


@dataclass(frozen=True)
class _Entry:
    """A cache file's content: the definitions without their compiled processes."""

    loaded: LoadedDefinitions
    # The content hash of each valid process, which a hit compiles again.
    hashes: dict[str, str]


def _read(path: Path) -> _Entry | None:
    if not _trusted(path):
        return None
    try:
        with path.open("rb") as handle:
            entry = pickle.load(handle)  # noqa: S301 - only entries this user wrote, see the module docstring
    except Exception:  # a broken entry is a cache miss, whatever broke it
        logger.warning("Ignoring the unreadable definitions cache entry %s", path)
        return None
    return entry if isinstance(entry, _Entry) else None


def _write(directory: Path, path: Path, loaded: LoadedDefinitions) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Compiled processes hold compiled Jinja2 code, which does not pickle; they are rebuilt.
    hashes = {process_id: process.content_hash for process_id, process in loaded.compiled.items()}
    entry = _Entry(replace(loaded, compiled={}), hashes)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".definitions-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(entry, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    entries = sorted(directory.glob("definitions-*.pickle"), key=lambda item: item.stat().st_mtime, reverse=True)
    for old in entries[KEEP_ENTRIES:]:
        old.unlink(missing_ok=True)


def _restored(entry: _Entry, root: Path) -> LoadedDefinitions:
    """Return the cached definitions with their valid processes compiled again."""
    compiled = {}
    for process_id, content_hash in entry.hashes.items():
        definition = entry.loaded.resolutions[process_id].process
        if isinstance(definition, ResolvedProcess):
            compiled[process_id] = CompiledProcess(definition, content_hash)
    return replace(entry.loaded, root=root, compiled=compiled)


def cached_only(root: Path, directory: Path) -> LoadedDefinitions | None:
    """Return all definitions under `root` if the cache has them as the files are now, else None."""
    cached = _read(directory / f"definitions-{cache_key(root)}.pickle")
    return None if cached is None else _restored(cached, root)


def load_cached(root: Path, paths: Sequence[Path] | None, directory: Path) -> tuple[LoadedDefinitions, bool]:
    """Load the definitions through the cache in `directory`; tell whether the cache had them."""
    key = cache_key(root, paths)
    path = directory / f"definitions-{key}.pickle"
    cached = _read(path)
    if cached is not None:
        return _restored(cached, root), True
    loaded = load_definitions(root, paths)
    try:
        _write(directory, path, loaded)
    except OSError as error:
        logger.warning("Could not write the definitions cache in %s: %s", directory, error)
    return loaded, False
