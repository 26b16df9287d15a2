"""Building blocks for definition tests: a minimal valid process and short ways to inspect problems."""

from __future__ import annotations

import textwrap
from pathlib import Path

from engine.definitions.loader import LoadedDefinitions
from engine.definitions.problems import Problem

# A valid process that changes nothing in the skeleton. It has 7 lines, so text that
# `demo()` appends starts on line 8.
HEADER = """\
process: demo
extends: afgoerelse
title: {da: Demo, en: Demo}
legal_basis:
  - title: {da: Lov, en: Act}
    reference: "§ 1"
classification: "01.02.03"
"""

DEMO_FILE = "processes/afgoerelse/demo.yaml"
SKELETON_FILE = "skeletons/afgoerelse.yaml"


def demo(extra: str = "") -> str:
    """Return HEADER followed by `extra` (dedented), whose first line is line 8 of the file."""
    return HEADER + textwrap.dedent(extra)


def formatted(loaded: LoadedDefinitions) -> list[str]:
    return [problem.format("en") for problem in loaded.problems]


def single(loaded: LoadedDefinitions) -> Problem:
    """Return the only problem, failing with the whole list when there is not exactly one."""
    assert len(loaded.problems) == 1, formatted(loaded)
    return loaded.problems[0]


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def edit_skeleton(root: Path, old: str, new: str) -> None:
    """Replace `old`, which must occur exactly once, in the copied skeleton."""
    path = root / SKELETON_FILE
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the skeleton"
    path.write_text(text.replace(old, new), encoding="utf-8")
