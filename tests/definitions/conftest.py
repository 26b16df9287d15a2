"""Fixtures for definition tests: a definitions folder in `tmp_path` with a copy of the `afgoerelse` skeleton."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.definitions.loader import LoadedDefinitions, load_definitions
from tests.helpers import REPOSITORY

LoadProcess = Callable[..., LoadedDefinitions]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A definitions root with the `afgoerelse` skeleton and `skeletons/letters/` copied from the repository.

    Other skeletons are left out, so that the expected problems and lists of known
    skeletons do not change when a skeleton is added to the repository.
    """
    shutil.copytree(REPOSITORY / "skeletons" / "letters", tmp_path / "skeletons" / "letters")
    shutil.copy(REPOSITORY / "skeletons" / "afgoerelse.yaml", tmp_path / "skeletons" / "afgoerelse.yaml")
    (tmp_path / "processes" / "afgoerelse").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def load_process(root: Path) -> LoadProcess:
    """Write one process file (text or raw bytes) under `processes/<folder>/` and load the whole root."""

    def load(content: str | bytes, *, name: str = "demo.yaml", folder: str = "afgoerelse") -> LoadedDefinitions:
        path = root / "processes" / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return load_definitions(root)

    return load
