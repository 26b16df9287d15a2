"""Land registration (tinglysning): recording a declaration on the land a grant concerns.

Some grant schemes require a declaration, such as a duty to keep an area as nature, to
be registered on the property. In production that goes to the Danish land register
(e-TL); the fake records declarations in memory and returns a registration number.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import date
from typing import Protocol


@dataclass(frozen=True)
class Registration:
    number: str
    case_reference: str
    declaration: str
    registered_on: date


class LandRegistry(Protocol):
    def register_declaration(self, case_reference: str, declaration: str, on: date) -> Registration:
        """Register a declaration for the case; registering the same one twice returns the first registration."""
        ...


class FakeLandRegistry:
    def __init__(self) -> None:
        self._registrations: dict[str, Registration] = {}
        self._lock = threading.Lock()

    def register_declaration(self, case_reference: str, declaration: str, on: date) -> Registration:
        key = hashlib.sha256(f"{case_reference}\n{declaration}".encode()).hexdigest()
        with self._lock:
            existing = self._registrations.get(key)
            if existing is not None:
                return existing
            registration = Registration(f"TL-{on.year}-{key[:10].upper()}", case_reference, declaration, on)
            self._registrations[key] = registration
            return registration
