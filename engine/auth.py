"""Actors, roles, teams, scopes and bearer tokens.

A token is 32 random bytes (URL-safe base64) with the prefix `sf_`; only its SHA-256 is
stored, so a leaked database does not leak usable tokens. A token belongs to a row of
`users`, and `authenticate` reads that user's roles and teams at every request, so a
changed role or a deactivated user takes effect at once. Roles are the role ids that
skeletons and processes declare (`caseworker`, `approver`, `applicant`, ...); the engine
checks them on every command. `admin` may manage users; it grants no case work by itself.

A token may carry scopes (`Scope`). A token with scopes may only do what they allow, and
`require_scope` enforces that in the engine; a token without scopes has every right of
its user.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import BadRequest, Forbidden, Unauthorized
from engine.i18n import Text
from engine.storage.tables import ApiToken, User

TOKEN_PREFIX = "sf_"  # noqa: S105 - a public prefix, not a secret
USER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,200}$")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# Roles that see the cases of their teams (engine.people.Access); others see the cases they submitted.
STAFF_ROLES: frozenset[str] = frozenset({"caseworker", "approver", "admin"})
# A user's team that stands for every team.
ALL_TEAMS = "*"


class Scope(StrEnum):
    """A permission that a token with scopes needs for a group of operations."""

    CASES_READ = "cases:read"  # read and list cases, their letters and documents
    CASES_SUBMIT = "cases:submit"  # submit applications
    CASES_WORK = "cases:work"  # complete, approve, hearings, handover
    DOCUMENTS_WRITE = "documents:write"  # add documents to a case
    ADMIN = "admin"  # manage users


@dataclass(frozen=True)
class Actor:
    """The user a request or command acts for, with the roles and teams read at authentication."""

    name: str
    roles: frozenset[str]
    # In the order of the user's record: the first team becomes the team of a case the user submits.
    teams: tuple[str, ...] = ()
    # The token's scopes; None for a token with every right of its user.
    scopes: frozenset[str] | None = None

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)

    def allows(self, scope: Scope) -> bool:
        return self.scopes is None or scope in self.scopes


def require_scope(actor: Actor, scope: Scope) -> None:
    """Raise `Forbidden` (403, code `missing_scope`) unless the actor's token allows `scope`."""
    if actor.allows(scope):
        return
    token_scopes = ", ".join(sorted(actor.scopes or ())) or "-"
    raise Forbidden(
        Text(
            f"Adgangsnøglen mangler scopet '{scope}', som handlingen kræver (nøglens scopes: {token_scopes}).",
            f"The token lacks the scope '{scope}' that this action requires (the token's scopes: {token_scopes}).",
        ),
        code="missing_scope",
        field="scope",
        hint=Text(
            f"Opret en nøgle med 'sagsflow token create BRUGER --scope {scope}'.",
            f"Create a token with 'sagsflow token create USER --scope {scope}'.",
        ),
        scope=str(scope),
    )


def validate_scopes(scopes: Iterable[str]) -> list[str] | None:
    """Return the scopes sorted and without repeats, None for none given, or raise BadRequest for an unknown one."""
    cleaned = sorted(set(scopes))
    known = [str(scope) for scope in Scope]
    for scope in cleaned:
        if scope not in known:
            raise BadRequest(
                Text(
                    f"Ukendt scope '{scope}'. Kendte scopes: {', '.join(known)}.",
                    f"Unknown scope '{scope}'. Known scopes: {', '.join(known)}.",
                ),
                code="unknown_scope",
                field="scope",
            )
    return cleaned or None


SYSTEM = Actor(name="system", roles=frozenset({"system"}))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def validate_user_name(user_name: str) -> None:
    if not USER_NAME_PATTERN.match(user_name):
        raise BadRequest(
            Text(
                f"Brugernavnet '{user_name}' er ugyldigt; brug bogstaver, cifre og . _ @ -.",
                f"The user name '{user_name}' is invalid; use letters, digits and . _ @ -.",
            ),
            field="user",
        )


def validate_identity(user_name: str, roles: Iterable[str]) -> list[str]:
    """Check a user name and roles; return the roles sorted and without repeats."""
    validate_user_name(user_name)
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
    scopes: Iterable[str] = (),
) -> str:
    """Store a new token for `user_name` and return it; it is not retrievable later.

    `roles` are stored with the token for the record only: `authenticate` takes the roles
    from the user's row. No scopes give the token every right of its user.
    """
    cleaned = validate_identity(user_name, roles)
    cleaned_scopes = validate_scopes(scopes)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            token_hash=hash_token(token),
            user_name=user_name,
            roles=cleaned,
            scopes=cleaned_scopes,
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


def _inactive(user_name: str) -> Unauthorized:
    return Unauthorized(
        Text(
            f"Brugeren '{user_name}' er deaktiveret, så adgangsnøglen afvises.",
            f"The user '{user_name}' is deactivated, so the token is rejected.",
        ),
        code="inactive_user",
        field="Authorization",
        hint=Text(
            "Bed en administrator om at aktivere brugeren igen ('sagsflow user update BRUGER --activate').",
            "Ask an administrator to activate the user again ('sagsflow user update USER --activate').",
        ),
    )


def authenticate(session: Session, token: str | None, now: datetime) -> Actor:
    """Return the actor a bearer token belongs to, with the user's current roles and teams.

    Raises `Unauthorized` for a missing, unknown, revoked or expired token and for a
    deactivated user.
    """
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise _unauthorized()
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one_or_none()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise _unauthorized()
    scopes = frozenset(row.scopes) if row.scopes is not None else None
    user = session.scalars(select(User).where(User.name == row.user_name)).one_or_none()
    if user is None:
        # NOTE: a token created before users were stored (schema revision 0001) has no user
        # row. It keeps the roles it was created with and belongs to no team, and it can be
        # revoked but not deactivated.
        return Actor(name=row.user_name, roles=frozenset(row.roles), scopes=scopes)
    if not user.active:
        raise _inactive(user.name)
    return Actor(name=user.name, roles=frozenset(user.roles), teams=tuple(user.teams), scopes=scopes)
