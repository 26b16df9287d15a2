"""Actors, roles and bearer tokens.

A token is 32 random bytes (URL-safe base64) with the prefix `sf_`; only its SHA-256 is
stored, so a leaked database does not leak usable tokens. Roles are the role ids that
skeletons and processes declare (`caseworker`, `approver`, `applicant`, ...); the engine
checks them on every command. `admin` may manage tokens and deploy through the API in
later versions; it grants no case work by itself.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import BadRequest, Unauthorized
from engine.i18n import Text
from engine.storage.tables import ApiToken

TOKEN_PREFIX = "sf_"  # noqa: S105 - a public prefix, not a secret
USER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,200}$")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# Roles that see every case; others see the cases they submitted.
STAFF_ROLES: frozenset[str] = frozenset({"caseworker", "approver", "admin"})


@dataclass(frozen=True)
class Actor:
    name: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)


SYSTEM = Actor(name="system", roles=frozenset({"system"}))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def validate_identity(user_name: str, roles: Iterable[str]) -> list[str]:
    if not USER_NAME_PATTERN.match(user_name):
        raise BadRequest(
            Text(
                f"Brugernavnet '{user_name}' er ugyldigt; brug bogstaver, cifre og . _ @ -.",
                f"The user name '{user_name}' is invalid; use letters, digits and . _ @ -.",
            ),
            field="user",
        )
    cleaned = sorted(set(roles))
    for role in cleaned:
        if not ROLE_PATTERN.match(role):
            raise BadRequest(
                Text(
                    f"Rollen '{role}' er ugyldig; brug små bogstaver, cifre og _.",
                    f"The role '{role}' is invalid; use lower-case letters, digits and _.",
                ),
                field="role",
            )
    if not cleaned:
        raise BadRequest(
            Text("Angiv mindst én rolle med --role.", "Give at least one role with --role."),
            field="role",
        )
    return cleaned


def create_token(
    session: Session,
    user_name: str,
    roles: Iterable[str],
    now: datetime,
    *,
    label: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Store a new token for `user_name` and return it; it is not retrievable later."""
    cleaned = validate_identity(user_name, roles)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            token_hash=hash_token(token),
            user_name=user_name,
            roles=cleaned,
            label=label,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return token


def revoke_tokens(session: Session, user_name: str, now: datetime) -> int:
    rows = session.scalars(select(ApiToken).where(ApiToken.user_name == user_name, ApiToken.revoked_at.is_(None))).all()
    for row in rows:
        row.revoked_at = now
    return len(rows)


def _unauthorized() -> Unauthorized:
    return Unauthorized(
        Text(
            "Manglende eller ugyldig adgangsnøgle. Send 'Authorization: Bearer <nøgle>'; "
            "en nøgle oprettes med 'sagsflow token create'.",
            "Missing or invalid access token. Send 'Authorization: Bearer <token>'; "
            "create one with 'sagsflow token create'.",
        ),
        field="Authorization",
    )


def authenticate(session: Session, token: str | None, now: datetime) -> Actor:
    """Return the actor a bearer token belongs to, or raise `Unauthorized`."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise _unauthorized()
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one_or_none()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise _unauthorized()
    return Actor(name=row.user_name, roles=frozenset(row.roles))
