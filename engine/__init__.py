"""Sagsflow: a declarative case-workflow engine for Danish public administration.

The engine loads skeletons and processes from YAML (`engine.definitions`), stores
deployed versions and running cases (`engine.storage`), and runs cases on them
(`engine.runtime`). The HTTP API in `api` and the CLI in `cli` are thin layers
over `engine.service.Sagsflow`.
"""

__version__ = "0.1.0"
