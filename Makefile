# Sagsflow: `make run` serves the API on the embedded SQLite database; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAGSFLOW := $(BIN)/sagsflow
HOST ?= 127.0.0.1
PORT ?= 8000
# Tests use this PostgreSQL database; each test run works in a schema of its own.
export SAGSFLOW_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test lint typecheck pytest install clean bench

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Sagsflow needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The reply links in hearing letters point at the server that `make run` starts.
run: export SAGSFLOW_PUBLIC_URL ?= http://$(HOST):$(PORT)
run: install
	$(SAGSFLOW) db upgrade
	$(SAGSFLOW) deploy
	$(SAGSFLOW) token demo
	$(SAGSFLOW) serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -n auto $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install
	$(BIN)/python -m bench.lifecycle
	$(BIN)/python -m bench.bulk
	$(BIN)/python -m bench.compile

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
