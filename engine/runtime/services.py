"""The outside systems and settings a running engine uses, bundled for injection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.adapters.cvr import CompanyRegister, FakeCompanyRegister
from engine.adapters.de_minimis import DeMinimisRegister, FakeDeMinimisRegister
from engine.adapters.digital_post import DigitalPost, MailboxDigitalPost
from engine.adapters.finance import FakeNavisionStat, FinanceSystem
from engine.adapters.klap import KlapRegister, OfflineKlapRegister
from engine.adapters.land_registry import FakeLandRegistry, LandRegistry
from engine.adapters.natura2000 import OfflineNatura2000Sites, ProtectedSites
from engine.adapters.physical_mail import FolderPhysicalMail, MemoryPhysicalMail, PhysicalMail
from engine.adapters.species import OfflineSpeciesPlus, SpeciesRegister
from engine.settings import DEFAULT_PUBLIC_URL, Authority, Settings


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
    physical_mail: PhysicalMail = field(default_factory=MemoryPhysicalMail)
    finance: FinanceSystem = field(default_factory=FakeNavisionStat)
    protected_sites: ProtectedSites = field(default_factory=OfflineNatura2000Sites)
    klap: KlapRegister = field(default_factory=OfflineKlapRegister)
    # The API's address as parties reach it, without a trailing slash; hearing letters link to it.
    public_url: str = DEFAULT_PUBLIC_URL

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """The development set-up: offline registers, and folders for digital post and print jobs.

        The print jobs and the list of recipients exempt from digital post are kept beside
        the digital post folder: by default `var/physical-mail/` and `var/digital-post-exempt.txt`.
        The fake finance system keeps its transactions there too, in `var/finance/transactions.jsonl`.
        """
        var = settings.digital_post_dir.parent
        return cls(
            species=OfflineSpeciesPlus(),
            companies=FakeCompanyRegister(),
            digital_post=MailboxDigitalPost(settings.digital_post_dir, var / "digital-post-exempt.txt"),
            authority=settings.authority,
            physical_mail=FolderPhysicalMail(var / "physical-mail"),
            finance=FakeNavisionStat(var / "finance" / "transactions.jsonl"),
            public_url=settings.public_url,
        )
