"""Deployed process versions, compiled on first use and cached by version id.

A version row is immutable, so a cached version never goes stale and a command on an
existing case needs no query for its process. The newest version of a process is looked
up (by id only) on each submission, so a deploy from another process, such as the CLI,
is seen at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from engine.definitions.compile import CompiledProcess
from engine.definitions.model import ResolvedProcess
from engine.errors import NotFound
from engine.i18n import Text
from engine.storage.tables import ProcessVersion


@dataclass(frozen=True)
class VersionInfo:
    """A deployed version without its (large) definition."""

    id: int
    process_id: str
    version: int
    content_hash: str
    deployed_at: datetime


def _info(row: ProcessVersion) -> VersionInfo:
    return VersionInfo(row.id, row.process_id, row.version, row.content_hash, row.deployed_at)


class ProcessCatalog:
    def __init__(self) -> None:
        self._entries: dict[int, tuple[VersionInfo, CompiledProcess]] = {}
        # Processes compiled from the definition files, by content hash: a version with the
        # same hash has the same definition, so it needs neither its stored JSON nor a compile.
        self._by_hash: dict[str, CompiledProcess] = {}
        self._lock = threading.Lock()

    def preload(self, compiled: Iterable[CompiledProcess]) -> None:
        with self._lock:
            self._by_hash.update((process.content_hash, process) for process in compiled)

    def by_version_id(self, session: Session, version_id: int) -> tuple[VersionInfo, CompiledProcess]:
        entry = self._entries.get(version_id)
        if entry is not None:
            return entry
        # The definition is loaded only when no preloaded process has the version's hash.
        row = session.get(ProcessVersion, version_id, options=[defer(ProcessVersion.definition)])
        if row is None:  # pragma: no cover - a foreign key guarantees it exists
            raise NotFound(
                Text(f"Procesversion {version_id} findes ikke.", f"Process version {version_id} does not exist.")
            )
        with self._lock:
            entry = self._entries.get(version_id)
            if entry is None:
                compiled = self._by_hash.get(row.content_hash)
                if compiled is None:
                    definition = ResolvedProcess.model_validate(row.definition)
                    compiled = CompiledProcess(definition, row.content_hash)
                entry = (_info(row), compiled)
                self._entries[version_id] = entry
        return entry

    def latest(self, session: Session, process_id: str) -> tuple[VersionInfo, CompiledProcess]:
        version_id = session.scalar(
            select(ProcessVersion.id)
            .where(ProcessVersion.process_id == process_id)
            .order_by(ProcessVersion.version.desc())
            .limit(1)
        )
        if version_id is None:
            known = ", ".join(
                session.scalars(select(ProcessVersion.process_id).distinct().order_by(ProcessVersion.process_id))
            )
            raise NotFound(
                Text(
                    f"Processen '{process_id}' er ikke udrullet.",
                    f"The process '{process_id}' is not deployed.",
                ),
                code="unknown_process",
                field="process",
                hint=Text(f"Udrullede processer: {known or '(ingen)'}.", f"Deployed processes: {known or '(none)'}."),
            )
        return self.by_version_id(session, version_id)

    def latest_versions(self, session: Session) -> list[tuple[VersionInfo, CompiledProcess]]:
        newest = (
            select(ProcessVersion.process_id, func.max(ProcessVersion.version).label("version"))
            .group_by(ProcessVersion.process_id)
            .subquery()
        )
        version_ids = session.scalars(
            select(ProcessVersion.id)
            .join(
                newest,
                (ProcessVersion.process_id == newest.c.process_id) & (ProcessVersion.version == newest.c.version),
            )
            .order_by(ProcessVersion.process_id)
        ).all()
        return [self.by_version_id(session, version_id) for version_id in version_ids]
