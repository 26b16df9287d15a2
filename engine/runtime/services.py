"""The outside systems and settings a running engine uses, bundled for injection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.adapters.cvr import CompanyRegister, FakeCompanyRegister
from engine.adapters.de_minimis import DeMinimisRegister, FakeDeMinimisRegister
from engine.adapters.digital_post import DigitalPost, MailboxDigitalPost
from engine.adapters.land_registry import FakeLandRegistry, LandRegistry
from engine.adapters.species import OfflineSpeciesPlus, SpeciesRegister
from engine.settings import Authority, Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    species: SpeciesRegister
    companies: CompanyRegister
    digital_post: DigitalPost
    authority: Authority = field(default_factory=Authority)
    clock: Callable[[], datetime] = utc_now
    de_minimis: DeMinimisRegister = field(default_factory=FakeDeMinimisRegister)
    land_registry: LandRegistry = field(default_factory=FakeLandRegistry)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """The development set-up: offline registers and a mailbox folder for digital post."""
        return cls(
            species=OfflineSpeciesPlus(),
            companies=FakeCompanyRegister(),
            digital_post=MailboxDigitalPost(settings.digital_post_dir),
            authority=settings.authority,
        )
