"""Deployed process versions, compiled on first use and cached by version id.

A version row is immutable, so a compiled version never goes stale; the newest version
of a process is looked up in the database on each submission, so a deploy from another
process (the CLI) is seen at once.
"""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.definitions.compile import CompiledProcess
from engine.definitions.model import ResolvedProcess
from engine.errors import NotFound
from engine.i18n import Text
from engine.storage.tables import ProcessVersion


class ProcessCatalog:
    def __init__(self) -> None:
        self._compiled: dict[int, CompiledProcess] = {}
        self._lock = threading.Lock()

    def compiled(self, version: ProcessVersion) -> CompiledProcess:
        cached = self._compiled.get(version.id)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._compiled.get(version.id)
            if cached is None:
                definition = ResolvedProcess.model_validate(version.definition)
                cached = CompiledProcess(definition, version.content_hash)
                self._compiled[version.id] = cached
        return cached

    def by_version_id(self, session: Session, version_id: int) -> tuple[ProcessVersion, CompiledProcess]:
        version = session.get(ProcessVersion, version_id)
        if version is None:  # pragma: no cover - a foreign key guarantees it exists
            raise NotFound(
                Text(f"Procesversion {version_id} findes ikke.", f"Process version {version_id} does not exist.")
            )
        return version, self.compiled(version)

    def latest(self, session: Session, process_id: str) -> tuple[ProcessVersion, CompiledProcess]:
        version = session.scalars(
            select(ProcessVersion)
            .where(ProcessVersion.process_id == process_id)
            .order_by(ProcessVersion.version.desc())
            .limit(1)
        ).one_or_none()
        if version is None:
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
        return version, self.compiled(version)

    def latest_versions(self, session: Session) -> list[ProcessVersion]:
        newest = (
            select(ProcessVersion.process_id, func.max(ProcessVersion.version).label("version"))
            .group_by(ProcessVersion.process_id)
            .subquery()
        )
        return list(
            session.scalars(
                select(ProcessVersion)
                .join(
                    newest,
                    (ProcessVersion.process_id == newest.c.process_id) & (ProcessVersion.version == newest.c.version),
                )
                .order_by(ProcessVersion.process_id)
            )
        )
