"""Commands for users, teams and handing cases over: `sagsflow user ...` and `sagsflow assign ...`.

The operator running these commands acts as an administrator of every team.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cli.common import count, open_service, operator, reported_errors, say, state
from engine.auth import ALL_TEAMS, Actor

user_app = typer.Typer(help="Brugere, roller og teams / users, roles and teams.", no_args_is_help=True)
assign_app = typer.Typer(
    help="Giv en sag eller et trin videre til en anden / hand a case or a step over.", no_args_is_help=True
)

UserArgument = Annotated[str, typer.Argument(help="Brugernavn / user name.")]
CaseArgument = Annotated[str, typer.Argument(help="Sagens id eller journalnummer / case id or journal number.")]
RolesOption = Annotated[list[str] | None, typer.Option("--role", help="Rolle; kan gentages / role; repeatable.")]
TeamsOption = Annotated[
    list[str] | None,
    typer.Option("--team", help="Team; kan gentages; * betyder alle teams / team; repeatable; * means every team."),
]
DisplayNameOption = Annotated[
    str | None, typer.Option("--display-name", help="Fulde navn / the person's or system's full name.")
]
VersionOption = Annotated[
    int | None, typer.Option("--version", help="Sagens version, som du sidst så den / the case version you last saw.")
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sagsflow` application."""
    app.add_typer(user_app, name="user")
    app.add_typer(assign_app, name="assign")


def _administrator() -> Actor:
    """Return the operator as an administrator who sees every team's cases."""
    base = operator()
    return Actor(name=base.name, roles=base.roles, teams=(ALL_TEAMS,))


def _print_user(user: dict[str, Any]) -> None:
    state_text = say("aktiv", "active") if user["active"] else say("deaktiveret", "deactivated")
    kind = say("integration", "integration") if user["kind"] == "integration" else say("person", "person")
    teams = ", ".join(user["teams"]) or "-"
    name = f" ({user['display_name']})" if user["display_name"] else ""
    typer.echo(
        f"{user['user']}{name}  {kind}  {state_text}  {say('roller', 'roles')}: {', '.join(user['roles'])}  "
        f"teams: {teams}"
    )


@user_app.command("add")
def user_add(
    name: UserArgument,
    role: RolesOption = None,
    team: TeamsOption = None,
    integration: Annotated[
        bool, typer.Option("--integration", help="En integration, ikke en person / an integration, not a person.")
    ] = False,
    display_name: DisplayNameOption = None,
) -> None:
    """Opret en bruger med roller og teams / add a user with roles and teams."""
    with reported_errors():
        user = open_service().add_user(
            _administrator(), name, role or [], team or [], integration=integration, display_name=display_name
        )
    _print_user(user)


@user_app.command("list")
def user_list(
    active_only: Annotated[bool, typer.Option("--active", help="Kun aktive brugere / only active users.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Skriv JSON / print JSON.")] = False,
) -> None:
    """Vis brugerne / list the users."""
    with reported_errors():
        users = open_service().list_users(_administrator(), include_inactive=not active_only)
    if as_json:
        typer.echo(json.dumps(users, ensure_ascii=False, indent=2))
        return
    for user in users:
        _print_user(user)
    typer.echo(say(f"{count(len(users), 'bruger', 'brugere')}.", f"{count(len(users), 'user', 'users')}."))


@user_app.command("update")
def user_update(
    name: UserArgument,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="Erstatter rollerne; kan gentages / replaces the roles; repeatable."),
    ] = None,
    team: Annotated[
        list[str] | None,
        typer.Option("--team", help="Erstatter teamene; kan gentages / replaces the teams; repeatable."),
    ] = None,
    no_teams: Annotated[bool, typer.Option("--no-teams", help="Fjern alle teams / remove every team.")] = False,
    display_name: DisplayNameOption = None,
    activate: Annotated[
        bool, typer.Option("--activate", help="Aktivér en deaktiveret bruger / activate a deactivated user.")
    ] = False,
) -> None:
    """Ret en brugers roller, teams eller navn; det gælder straks / change a user; it takes effect at once."""
    if team and no_teams:
        typer.echo(
            say("Fejl: brug enten --team eller --no-teams.", "Error: use either --team or --no-teams."), err=True
        )
        raise typer.Exit(2)
    if not (role or team or no_teams or display_name is not None or activate):
        typer.echo(
            say(
                "Fejl: angiv mindst én af --role, --team, --no-teams, --display-name og --activate.",
                "Error: give at least one of --role, --team, --no-teams, --display-name and --activate.",
            ),
            err=True,
        )
        raise typer.Exit(2)
    teams = [] if no_teams else (team or None)
    with reported_errors():
        user = open_service().update_user(
            _administrator(),
            name,
            roles=role or None,
            teams=teams,
            display_name=display_name,
            active=True if activate else None,
        )
    _print_user(user)


@user_app.command("deactivate")
def user_deactivate(name: UserArgument) -> None:
    """Deaktivér en bruger; brugerens nøgler afvises straks / deactivate a user; their tokens stop working at once."""
    with reported_errors():
        user = open_service().deactivate_user(_administrator(), name)
    _print_user(user)


def _print_assignment(view: dict[str, Any], step: str | None) -> None:
    if step is None:
        assignee = view["assignee"]
    else:
        rows = [row for row in view["checklist"] if row["step"] == step]
        assignee = rows[-1]["assignee"] if rows else None
    target = view["journal_number"] if step is None else f"{view['journal_number']}/{step}"
    nobody = say("ingen", "nobody")
    typer.echo(
        say(
            f"{target} er givet videre til {assignee or nobody} (version {view['version']}).",
            f"{target} is handed over to {assignee or nobody} (version {view['version']}).",
        )
    )


@assign_app.command("case")
def assign_case(
    case: CaseArgument,
    user: Annotated[str | None, typer.Argument(help="Den nye ansvarlige / the new assignee.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Fjern den ansvarlige / remove the assignee.")] = False,
    version: VersionOption = None,
) -> None:
    """Giv en sag videre til en anden bruger / hand a case over to another user."""
    assignee = _assignee(user, clear)
    with reported_errors():
        view = open_service().assign_case(_administrator(), case, assignee, version, state.language)
    _print_assignment(view, None)


@assign_app.command("step")
def assign_step(
    case: CaseArgument,
    step: Annotated[str, typer.Argument(help="Trinnets id / the step id.")],
    user: Annotated[str | None, typer.Argument(help="Den nye ansvarlige / the new assignee.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Fjern den ansvarlige / remove the assignee.")] = False,
    version: VersionOption = None,
) -> None:
    """Giv et aktivt trin videre til en bruger med trinnets rolle / hand an active step over."""
    assignee = _assignee(user, clear)
    with reported_errors():
        view = open_service().assign_step(_administrator(), case, step, assignee, version, state.language)
    _print_assignment(view, step)


def _assignee(user: str | None, clear: bool) -> str | None:
    if clear and user is None:
        return None
    if user is not None and not clear:
        return user
    typer.echo(
        say("Fejl: angiv enten en bruger eller --clear.", "Error: give either a user or --clear."),
        err=True,
    )
    raise typer.Exit(2)
