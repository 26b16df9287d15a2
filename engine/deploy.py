"""Deploy loaded definitions as immutable process versions.

Deploying is idempotent: a process whose resolved content hashes the same as its newest
version is left alone; changed content becomes version n+1. Running cases keep the
version they started on. Nothing is deployed when any definition has an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.definitions.loader import LoadedDefinitions
from engine.errors import DefinitionError
from engine.storage.tables import ProcessVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployedVersion:
    process_id: str
    version: int
    content_hash: str
    created: bool


def deploy_definitions(
    session: Session, loaded: LoadedDefinitions, now: datetime, deployed_by: str
) -> list[DeployedVersion]:
    if loaded.errors:
        raise DefinitionError(loaded.problems)

    newest: dict[str, int] = dict(
        session.execute(
            select(ProcessVersion.process_id, func.max(ProcessVersion.version)).group_by(ProcessVersion.process_id)
        ).all()
    )
    hashes = _newest_hashes(session)

    results: list[DeployedVersion] = []
    for process_id, compiled in sorted(loaded.compiled.items()):
        current = newest.get(process_id)
        if current is not None and hashes.get(process_id) == compiled.content_hash:
            results.append(DeployedVersion(process_id, current, compiled.content_hash, created=False))
            continue
        version = (current or 0) + 1
        session.add(
            ProcessVersion(
                process_id=process_id,
                version=version,
                skeleton=compiled.definition.skeleton,
                content_hash=compiled.content_hash,
                definition=compiled.definition.model_dump(mode="json"),
                deployed_at=now,
                deployed_by=deployed_by,
            )
        )
        logger.info("Deployed %s version %d (%s)", process_id, version, compiled.content_hash[:12])
        results.append(DeployedVersion(process_id, version, compiled.content_hash, created=True))
    session.flush()
    return results


def _newest_hashes(session: Session) -> dict[str, str]:
    newest = (
        select(ProcessVersion.process_id, func.max(ProcessVersion.version).label("version"))
        .group_by(ProcessVersion.process_id)
        .subquery()
    )
    rows = session.execute(
        select(ProcessVersion.process_id, ProcessVersion.content_hash).join(
            newest,
            (ProcessVersion.process_id == newest.c.process_id) & (ProcessVersion.version == newest.c.version),
        )
    ).all()
    return dict(rows)
