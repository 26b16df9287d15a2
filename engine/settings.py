"""Settings, read from environment variables once at start-up.

| variable                        | default                               |
| ------------------------------- | ------------------------------------- |
| SAGSFLOW_DATABASE_URL           | sqlite:///var/sagsflow.db             |
| SAGSFLOW_DEFINITIONS            | nearest folder with skeletons/        |
| SAGSFLOW_LANGUAGE               | da                                    |
| SAGSFLOW_DIGITAL_POST_DIR       | var/digital-post                      |
| SAGSFLOW_CACHE_DIR              | var/cache (empty: no cache)           |
| SAGSFLOW_PUBLIC_URL             | http://127.0.0.1:8000                 |
| SAGSFLOW_AUTHORITY_NAME, _ADDRESS, _POSTCODE, _CITY, _EMAIL, _CVR     |

Relative paths are taken from the current directory, so run commands from the project
folder (as `make run` does) or set absolute paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.definitions.loader import find_root
from engine.i18n import Language, parse_language

DEFAULT_DATABASE_URL = "sqlite:///var/sagsflow.db"
# The address at which parties reach the API, for the reply links in hearing letters.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Authority:
    """The sending authority, as letters and digital post messages name it."""

    name: str = "Miljøstyrelsen"
    address: str = "Tolderlundsvej 5"
    postcode: str = "5000"
    city: str = "Odense C"
    email: str = "mst@mst.dk"
    cvr: str = "25798376"

    def as_context(self) -> dict[str, str]:
        return {
            "name": self.name,
            "address": self.address,
            "postcode": self.postcode,
            "city": self.city,
            "email": self.email,
            "cvr": self.cvr,
        }


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    definitions_root: Path = SOURCE_ROOT
    language: Language = "da"
    digital_post_dir: Path = Path("var/digital-post")
    # Where loaded definitions are cached (engine/definitions/cache.py); None turns it off.
    cache_dir: Path | None = Path("var/cache")
    authority: Authority = field(default_factory=Authority)
    public_url: str = DEFAULT_PUBLIC_URL

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        definitions = env.get("SAGSFLOW_DEFINITIONS")
        root = Path(definitions) if definitions else (find_root(Path.cwd()) or SOURCE_ROOT)
        defaults = Authority()
        authority = Authority(
            name=env.get("SAGSFLOW_AUTHORITY_NAME", defaults.name),
            address=env.get("SAGSFLOW_AUTHORITY_ADDRESS", defaults.address),
            postcode=env.get("SAGSFLOW_AUTHORITY_POSTCODE", defaults.postcode),
            city=env.get("SAGSFLOW_AUTHORITY_CITY", defaults.city),
            email=env.get("SAGSFLOW_AUTHORITY_EMAIL", defaults.email),
            cvr=env.get("SAGSFLOW_AUTHORITY_CVR", defaults.cvr),
        )
        return cls(
            database_url=env.get("SAGSFLOW_DATABASE_URL") or DEFAULT_DATABASE_URL,
            definitions_root=root,
            language=parse_language(env.get("SAGSFLOW_LANGUAGE")),
            digital_post_dir=Path(env.get("SAGSFLOW_DIGITAL_POST_DIR") or "var/digital-post"),
            cache_dir=Path(cache) if (cache := env.get("SAGSFLOW_CACHE_DIR", "var/cache")) else None,
            authority=authority,
            public_url=(env.get("SAGSFLOW_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/"),
        )
