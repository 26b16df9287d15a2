"""What an automatic action is and what it may touch while it runs.

The registry itself is `engine.actions.ACTIONS`; the actions live in `engine.actions` and
in modules beside it (ledger, GIS, KLAP), which import only this module so that the
registry can import them all without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from engine.adapters.cvr import CompanyRegister
from engine.adapters.de_minimis import DeMinimisRegister
from engine.adapters.land_registry import LandRegistry
from engine.adapters.species import SpeciesRegister

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from engine.auth import Actor
    from engine.definitions.compile import CompiledProcess
    from engine.runtime.services import Services
    from engine.storage.tables import Case


class ActionContext(Protocol):
    """The part of a running case command that an action may read and change.

    `session` is the command's transaction: an action that writes other rows (a ledger
    entry, an outbox message) writes them there, so that they are committed or rolled
    back together with the case.
    """

    @property
    def species(self) -> SpeciesRegister: ...

    @property
    def companies(self) -> CompanyRegister: ...

    @property
    def de_minimis(self) -> DeMinimisRegister: ...

    @property
    def land_registry(self) -> LandRegistry: ...

    @property
    def case_reference(self) -> str: ...

    @property
    def today(self) -> date: ...

    @property
    def session(self) -> Session: ...

    @property
    def services(self) -> Services: ...

    @property
    def case(self) -> Case: ...

    @property
    def process(self) -> CompiledProcess: ...

    @property
    def actor(self) -> Actor: ...

    @property
    def now(self) -> datetime: ...

    def value(self, field: str) -> Any: ...

    def set_value(self, field: str, value: Any) -> None: ...

    def guard_context(self) -> dict[str, Any]: ...

    def record(self, key: str, entry: Any) -> None:
        """Add `entry` to the list `key` of the command's audit event, e.g. a ledger movement."""
        ...


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class FieldUse:
    """A field an action reads or writes, named by one of its parameters."""

    param: str
    field: str
    types: frozenset[str]
    writes: bool


@dataclass(frozen=True)
class Action:
    name: str
    params: type[Params]
    run: Callable[[ActionContext, Any], str]
    """Carries out the action and returns the step's outcome, one of `outcomes`."""
    uses: Callable[[Any], list[FieldUse]]
    outcomes: tuple[str, ...]
    """Every outcome `run` can return; guards may compare `outcome.<step>` with them."""
    expressions: Callable[[Any], list[tuple[tuple[str | int, ...], str]]] = lambda params: []
    """Guard expressions among the parameters, with their path under `params`, for validation."""
