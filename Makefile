# make run    set up .venv, migrate the local SQLite database, load the demo, serve on http://127.0.0.1:8000
# make test   lint, type-check and run the whole suite with branch coverage (needs PostgreSQL and Redis)
#
# Needs only Python 3.11+ and GNU make. Point at another interpreter with: make run PYTHON=python3.12

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVER := $(BIN)/python -m server

.PHONY: run test lint fmt reset

run: $(VENV)/.installed
	$(SERVER) migrate
	$(SERVER) seed-demo
	$(SERVER) serve

# pytest exits 5 when it collects no tests; like any other non-zero status, that fails `make test`.
# Two workers (pytest-xdist): each has its own PostgreSQL database and Redis key prefix.
test: lint
	$(BIN)/pytest -n 2 --cov --cov-branch --cov-report=term

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Deletes the local SQLite database (and its WAL files); the next `make run` starts afresh.
reset:
	rm -f var/kiosk.db*

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "This project needs Python 3.11 or newer as '$(PYTHON)', found: $$($(PYTHON) --version 2>/dev/null || echo nothing)." >&2; \
		echo "Install it, or name one that is: make $(or $(MAKECMDGOALS),run) PYTHON=python3.12" >&2; \
		exit 1; \
	}
	$(PYTHON) -m venv $(VENV)

# Stamp files: install again only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

# The dev extras include the project itself, so they stand for a plain install too.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@ $(VENV)/.installed
