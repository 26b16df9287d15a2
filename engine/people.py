"""Users, teams, who may see which case, and handing a case or a step over.

A row of `users` contains a person's or an integration's roles and teams. Staff (a role in
`engine.auth.STAFF_ROLES`) see the cases of their teams and the cases without a team;
the team `*` and the roles granted across teams (`SAGSFLOW_CROSS_TEAM_ROLES`, default
`admin`) see every team's cases. Other users see only the cases they submitted. A case
gets its team at submission (`team_for_new_case`). `Access` decides visibility both for
one loaded case and as a SQL condition for lists, so the two cannot disagree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.auth import ALL_TEAMS, STAFF_ROLES, Actor, validate_identity, validate_user_name
from engine.definitions.fields import FieldValueError, check_text
from engine.definitions.model import FIELD_ID_PATTERN
from engine.errors import BadRequest, ConfigurationError, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from engine.i18n import Text
from engine.runtime.commands import CaseCommand
from engine.storage.tables import Case, CaseStatus, User

CROSS_TEAM_ROLES_VARIABLE = "SAGSFLOW_CROSS_TEAM_ROLES"
DEFAULT_CROSS_TEAM_ROLES: frozenset[str] = frozenset({"admin"})
# Team ids are shaped like role and field ids.
TEAM_PATTERN = re.compile(FIELD_ID_PATTERN)
MAX_TEAM_LENGTH = 64  # the length of cases.team
MAX_DISPLAY_NAME_LENGTH = 200


class UserKind(StrEnum):
    PERSON = "person"
    INTEGRATION = "integration"


# Visibility ---------------------------------------------------------------------------------


class Access:
    """The visibility rules, with the roles that see every team's cases."""

    def __init__(self, cross_team_roles: Iterable[str] = DEFAULT_CROSS_TEAM_ROLES) -> None:
        roles = frozenset(cross_team_roles)
        not_staff = sorted(roles - STAFF_ROLES)
        if not_staff:
            staff = ", ".join(sorted(STAFF_ROLES))
            raise ConfigurationError(
                Text(
                    f"{CROSS_TEAM_ROLES_VARIABLE} må kun nævne medarbejderroller ({staff}), "
                    f"ikke {', '.join(not_staff)}.",
                    f"{CROSS_TEAM_ROLES_VARIABLE} may only name staff roles ({staff}), not {', '.join(not_staff)}.",
                )
            )
        self.cross_team_roles = roles

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Access:
        """Read `SAGSFLOW_CROSS_TEAM_ROLES`, comma-separated; unset means `admin`, empty means no role."""
        env = os.environ if environ is None else environ
        value = env.get(CROSS_TEAM_ROLES_VARIABLE)
        if value is None:
            return cls()
        return cls(role.strip() for role in value.split(",") if role.strip())

    def sees_every_team(self, actor: Actor) -> bool:
        return actor.is_staff and (ALL_TEAMS in actor.teams or bool(actor.roles & self.cross_team_roles))

    def may_see(self, actor: Actor, case: Case) -> bool:
        """Decide whether `actor` may see `case` at all; callers return 404 when not."""
        if not actor.is_staff:
            return case.created_by == actor.name
        return case.team is None or case.team in actor.teams or self.sees_every_team(actor)

    def visible_cases(self, actor: Actor) -> ColumnElement[bool] | None:
        """Return the SQL condition on `Case` that `may_see` describes, or None when every case is visible."""
        if not actor.is_staff:
            return Case.created_by == actor.name
        if self.sees_every_team(actor):
            return None
        teams = [team for team in actor.teams if team != ALL_TEAMS]
        if not teams:
            return Case.team.is_(None)
        return or_(Case.team.is_(None), Case.team.in_(teams))


def team_for_new_case(process_team: str | None, actor: Actor) -> str | None:
    """Return the process's team, else the submitting staff user's first team (not `*`), else None."""
    if process_team is not None:
        return process_team
    if not actor.is_staff:
        return None
    return next((team for team in actor.teams if team != ALL_TEAMS), None)


# Users ----------------------------------------------------------------------------------------


def validate_teams(teams: Iterable[str]) -> list[str]:
    """Return the teams in the given order without repeats, or raise BadRequest for an invalid one."""
    cleaned: list[str] = []
    for team in teams:
        if team != ALL_TEAMS and not (TEAM_PATTERN.match(team) and len(team) <= MAX_TEAM_LENGTH):
            raise BadRequest(
                Text(
                    f"Teamet '{team}' er ugyldigt; brug små bogstaver, cifre og _ (højst "
                    f"{MAX_TEAM_LENGTH} tegn, første tegn et bogstav), eller * for alle teams.",
                    f"The team '{team}' is invalid; use lower-case letters, digits and _ (at most "
                    f"{MAX_TEAM_LENGTH} characters, starting with a letter), or * for every team.",
                ),
                code="invalid_team",
                field="team",
            )
        if team not in cleaned:
            cleaned.append(team)
    return cleaned


def check_known_roles(roles: Iterable[str], known: set[str]) -> None:
    """Raise BadRequest for a role that no deployed process declares (and is not `admin`).

    Before the first deploy `known` is empty, and every well-formed role is accepted.
    """
    unknown = sorted(set(roles) - known - {"admin"})
    if known and unknown:
        listed = ", ".join(sorted(known | {"admin"}))
        raise BadRequest(
            Text(
                f"Ukendt rolle: {', '.join(unknown)}. Kendte roller: {listed}.",
                f"Unknown role: {', '.join(unknown)}. Known roles: {listed}.",
            ),
            code="unknown_role",
            field="role",
        )


def _display_name(value: str | None) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        check_text(text)
    except FieldValueError as error:
        raise BadRequest(error.text, code=error.code, field="display_name") from None
    if len(text) > MAX_DISPLAY_NAME_LENGTH:
        raise BadRequest(
            Text(
                f"Det fulde navn må højst være {MAX_DISPLAY_NAME_LENGTH} tegn.",
                f"The display name may be at most {MAX_DISPLAY_NAME_LENGTH} characters.",
            ),
            code="too_long",
            field="display_name",
        )
    return text


def unknown_user(name: str) -> NotFound:
    return NotFound(
        Text(f"Brugeren '{name}' findes ikke.", f"The user '{name}' does not exist."),
        code="unknown_user",
        field="user",
        hint=Text("Se brugerne med 'sagsflow user list'.", "List the users with 'sagsflow user list'."),
    )


def find_user(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name)).one_or_none()


def get_user(session: Session, name: str) -> User:
    """Return the user called `name`, or raise NotFound."""
    user = find_user(session, name)
    if user is None:
        raise unknown_user(name[:200])
    return user


def list_users(session: Session, *, include_inactive: bool = True) -> list[User]:
    """Return the users ordered by name."""
    query = select(User).order_by(User.name)
    if not include_inactive:
        query = query.where(User.active.is_(True))
    return list(session.scalars(query))


def add_user(
    session: Session,
    name: str,
    roles: Iterable[str],
    teams: Iterable[str],
    now: datetime,
    *,
    known_roles: set[str],
    kind: UserKind = UserKind.PERSON,
    display_name: str | None = None,
) -> User:
    """Store a new active user; raise Conflict when the name is taken.

    `known_roles` are the roles the deployed processes declare (see `check_known_roles`).
    """
    cleaned_roles = validate_identity(name, roles)
    check_known_roles(cleaned_roles, known_roles)
    cleaned_teams = validate_teams(teams)
    # Names that differ only in case would let one person act as two, for example past four eyes.
    taken = session.scalars(select(User.name).where(func.lower(User.name) == name.lower())).first()
    if taken is not None:
        raise _user_exists(taken)
    user = User(
        name=name,
        display_name=_display_name(display_name),
        kind=kind,
        roles=cleaned_roles,
        teams=cleaned_teams,
        active=True,
        created_at=now,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        # Another transaction added the same name since the check above.
        raise _user_exists(name) from None
    return user


def _user_exists(name: str) -> Conflict:
    return Conflict(
        Text(f"Brugeren '{name}' findes allerede.", f"The user '{name}' already exists."),
        code="user_exists",
        field="user",
        hint=Text(
            "Brugernavne skelner ikke mellem store og små bogstaver. Ret brugeren med PATCH /users/{navn} "
            "eller 'sagsflow user update'.",
            "User names do not distinguish upper and lower case. Change the user with PATCH /users/{name} "
            "or 'sagsflow user update'.",
        ),
    )


def update_user(
    user: User,
    *,
    known_roles: set[str],
    roles: Iterable[str] | None = None,
    teams: Iterable[str] | None = None,
    display_name: str | None = None,
    active: bool | None = None,
) -> User:
    """Change the given attributes; None leaves one as it is."""
    if roles is not None:
        cleaned_roles = validate_identity(user.name, roles)
        check_known_roles(cleaned_roles, known_roles)
        user.roles = cleaned_roles
    if teams is not None:
        user.teams = validate_teams(teams)
    if display_name is not None:
        user.display_name = _display_name(display_name)
    if active is not None:
        user.active = active
    return user


def keep_an_administrator(session: Session, changed: User, actor: Actor) -> None:
    """Raise Conflict when a change to an administrator, made over the API, leaves no active administrator.

    The CLI's operator is an administrator without a user record, so the CLI may remove
    the last one. Over HTTP, that would lock everyone out of user administration.
    """
    if actor.name.startswith("cli:") or (changed.active and "admin" in changed.roles):
        return
    session.flush()
    remaining = [user for user in list_users(session, include_inactive=False) if "admin" in user.roles]
    if remaining:
        return
    raise Conflict(
        Text(
            f"'{changed.name}' er den sidste aktive administrator; ændringen er ikke gemt.",
            f"'{changed.name}' is the last active administrator; the change was not saved.",
        ),
        code="last_administrator",
        field="user",
        hint=Text(
            "Giv først en anden bruger rollen admin, eller brug 'sagsflow user update' på serveren.",
            "Give another user the role admin first, or use 'sagsflow user update' on the server.",
        ),
    )


def actor_of(user: User) -> Actor:
    """Return the actor a user acts as with a token without scopes."""
    return Actor(name=user.name, roles=frozenset(user.roles), teams=tuple(user.teams))


def user_view(user: User) -> dict[str, Any]:
    return {
        "user": user.name,
        "display_name": user.display_name,
        "kind": user.kind,
        "roles": list(user.roles),
        "teams": list(user.teams),
        "active": user.active,
        "created_at": user.created_at.isoformat(),
    }


def require_admin(actor: Actor) -> None:
    """Raise Forbidden unless the actor has the role `admin`; the scope is checked by `require_scope`."""
    if not actor.has("admin"):
        raise Forbidden(
            Text(
                "Kun en administrator (rollen admin) må administrere brugere.",
                "Only an administrator (the role admin) may manage users.",
            ),
            code="missing_role",
        )


# Handover -------------------------------------------------------------------------------------


def _require_staff(command: CaseCommand) -> None:
    if not command.actor.is_staff:
        raise Forbidden(
            Text(
                "Kun sagens medarbejdere må give en sag eller et trin videre.",
                "Only the case's staff may hand a case or a step over.",
            ),
            code="missing_role",
        )
    if command.case.status != CaseStatus.OPEN:
        raise Conflict(
            Text(
                f"Sagen {command.case.journal_number} er afsluttet og kan ikke gives videre.",
                f"The case {command.case.journal_number} is closed and cannot be handed over.",
            ),
            code="case_closed",
        )


def _invalid_assignee(code: str, text: Text) -> InvalidInput:
    return InvalidInput([FieldError("assignee", code, text)])


def _check_handover_target(
    command: CaseCommand, access: Access, assignee: str, role: str | None, preparers: set[str]
) -> None:
    """Raise InvalidInput (422) unless `assignee` is an active staff user who may take the case or step."""
    try:
        validate_user_name(assignee)
    except BadRequest as error:
        raise _invalid_assignee("invalid", error.text) from None
    user = find_user(command.session, assignee)
    if user is None:
        raise _invalid_assignee("unknown_user", unknown_user(assignee).text)
    if not user.active:
        raise _invalid_assignee(
            "inactive_user", Text(f"Brugeren '{assignee}' er deaktiveret.", f"The user '{assignee}' is deactivated.")
        )
    target = actor_of(user)
    if not target.is_staff:
        raise _invalid_assignee(
            "not_staff",
            Text(
                f"Brugeren '{assignee}' er ikke medarbejder (sagsbehandler, godkender eller administrator).",
                f"The user '{assignee}' is not staff (caseworker, approver or administrator).",
            ),
        )
    if not access.may_see(target, command.case):
        raise _invalid_assignee(
            "not_in_team",
            Text(
                f"Brugeren '{assignee}' arbejder ikke i sagens team '{command.case.team}'.",
                f"The user '{assignee}' does not work in the case's team '{command.case.team}'.",
            ),
        )
    if role is not None and not target.has(role):
        raise _invalid_assignee(
            "missing_role",
            Text(
                f"Brugeren '{assignee}' har ikke trinnets rolle '{role}'.",
                f"The user '{assignee}' does not have the step's role '{role}'.",
            ),
        )
    if assignee in preparers:
        raise _invalid_assignee(
            "four_eyes",
            Text(
                f"Brugeren '{assignee}' har selv udført det trin, der skal godkendes (fire-øjne-princippet).",
                f"The user '{assignee}' completed the step to be approved (four-eyes principle).",
            ),
        )


def assign_case(command: CaseCommand, access: Access, assignee: str | None) -> None:
    """Make `assignee` responsible for the case, or remove the assignee for None; the command audits it."""
    _require_staff(command)
    if assignee is not None:
        _check_handover_target(command, access, assignee, None, set())
    before = command.case.assignee
    command.case.assignee = assignee
    command.changes["assignee"] = [before, assignee]


def assign_step(command: CaseCommand, access: Access, step_id: str, assignee: str | None) -> None:
    """Make `assignee` responsible for an active step of the case, or remove the step's assignee for None."""
    _require_staff(command)
    row, step = command.active_step(step_id)
    definition = step.definition
    if assignee is not None:
        preparers = (
            command.preparers(definition.approves) if definition.kind == "approval" and definition.approves else set()
        )
        _check_handover_target(command, access, assignee, definition.role, preparers)
    before = row.assignee
    row.assignee = assignee
    command.changes["step_assignee"] = {
        "step": row.step_id,
        "phase": row.phase,
        "round": row.round,
        "assignee": [before, assignee],
    }
