"""Helpers every CLI command module shares: settings, language, clean errors, the engine."""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from engine import people
from engine.auth import Actor, validate_user_name
from engine.errors import Forbidden, InvalidInput, SagsflowError
from engine.i18n import Language, Text
from engine.settings import Settings


class State:
    language: Language = "da"
    settings: Settings = Settings()


state = State()


def say(da: str, en: str) -> str:
    return en if state.language == "en" else da


def count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # transitions logs every callback at INFO; its warnings and errors are enough here.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Print a `SagsflowError` as one message, with each invalid value, and exit 1; other errors exit 2."""
    try:
        yield
    except InvalidInput as error:
        # One line for the request, then one line for each invalid value.
        typer.echo(f"{say('Fejl', 'Error')}: {error.message(state.language)}", err=True)
        for entry in error.errors:
            entry_hint = f" {entry.hint.get(state.language)}" if entry.hint else ""
            typer.echo(f"  {entry.field}: {entry.text.get(state.language)}{entry_hint}", err=True)
        raise typer.Exit(1) from None
    except SagsflowError as error:
        typer.echo(f"{say('Fejl', 'Error')}: {error.message(state.language)}", err=True)
        hint = getattr(error, "hint", None)
        if hint is not None:
            typer.echo(hint.get(state.language), err=True)
        raise typer.Exit(1) from None
    except typer.Exit:
        raise
    except Exception as error:
        if os.environ.get("SAGSFLOW_DEBUG"):
            raise
        typer.echo(
            say(
                f"Intern fejl: {type(error).__name__}: {error}. Kør igen med SAGSFLOW_DEBUG=1 for detaljer.",
                f"Internal error: {type(error).__name__}: {error}. Run again with SAGSFLOW_DEBUG=1 for details.",
            ),
            err=True,
        )
        raise typer.Exit(2) from None


def open_service() -> Any:
    """The engine on the configured database, which must be reachable and migrated."""
    from engine.runtime.services import Services  # noqa: PLC0415 - keeps `validate` fast
    from engine.service import Sagsflow  # noqa: PLC0415
    from engine.storage.database import Database  # noqa: PLC0415
    from engine.storage.migrate import ensure_current  # noqa: PLC0415

    settings = state.settings
    database = Database(settings.database_url)
    ensure_current(database)
    return Sagsflow(database, Services.from_settings(settings))


def operator() -> Actor:
    """The person running the CLI on the server, who may read every case."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "operator"
    return Actor(name=f"cli:{user}", roles=frozenset({"admin"}))


def fail(da: str, en: str, *, code: int = 1) -> typer.Exit:
    """Print an error in the chosen language and return the `typer.Exit` to raise."""
    typer.echo(f"{say('Fejl', 'Error')}: {say(da, en)}", err=True)
    return typer.Exit(code)


OptionalUserOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Handl som denne registrerede bruger; standard: operatøren, der ser alle sager / "
        "act as this registered user; default: the operator, who sees every case.",
    ),
]


def acting_user(service: Any, name: str) -> Actor:
    """Return the actor for the registered user `name`, with the roles and teams stored now.

    Raises BadRequest for an invalid name, NotFound for an unknown user and Forbidden for
    a deactivated one, as authentication over HTTP would.
    """
    validate_user_name(name)
    with service.database.read() as session:
        user = people.get_user(session, name)
        if not user.active:
            raise Forbidden(
                Text(
                    f"Brugeren '{name}' er deaktiveret og kan ikke handle på sager.",
                    f"The user '{name}' is deactivated and cannot act on cases.",
                ),
                code="inactive_user",
                field="user",
                hint=Text(
                    f"Aktivér brugeren med 'sagsflow user update {name} --activate'.",
                    f"Activate the user with 'sagsflow user update {name} --activate'.",
                ),
            )
        return people.actor_of(user)


def actor_for(service: Any, name: str | None) -> Actor:
    """Return the operator when no user is named, else the named user as `acting_user` does."""
    return operator() if name is None else acting_user(service, name)
