# make run       set up .venv, migrate the local SQLite database, load the demo, print each device's enrolment
#                link, serve on http://127.0.0.1:8000
# make test      check the lock, lint, type-check and run the whole suite with branch coverage (needs PostgreSQL and Redis)
# make lock      after editing the dependencies in pyproject.toml: bring requirements*.txt in line, keeping other pins
# make upgrade   move every pin (or PACKAGE=name's) to the newest release pyproject.toml allows; then make test
# make outdated  list the installed packages that have newer releases
#
# Needs only Python 3.11+ and GNU make. Point at another interpreter with: make run PYTHON=python3.12

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVER := $(BIN)/python -m server

.PHONY: run test lint fmt reset lock upgrade outdated screenshots

run: $(VENV)/.installed
	$(SERVER) migrate
	$(SERVER) seed-demo
	$(SERVER) enrol-links
	$(SERVER) serve

# pytest exits 5 when it collects no tests; like any other non-zero status, that fails `make test`.
# Two workers (pytest-xdist): each has its own PostgreSQL database and Redis key prefix; tests marked with the same
# xdist_group run in the same worker.
test: lint
	$(BIN)/pytest -n 2 --dist loadgroup --cov --cov-branch --cov-report=term

lint: $(VENV)/.installed-dev
	$(BIN)/python -m tests.lock_check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The README's pictures of the apps, taken by the tests of the whole restaurant, enrolment and the ops page (the
# browser tests otherwise save theirs in var/screenshots/).
SCREENSHOT_TESTS := tests/browser/test_restaurant.py tests/browser/test_enrolment.py tests/browser/test_ops.py

screenshots: $(VENV)/.installed-dev
	SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -n 2 $(SCREENSHOT_TESTS) -k sqlite

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Deletes the local SQLite database (and its WAL files); the next `make run` starts afresh.
reset:
	rm -f var/kiosk.db*

# The lock: requirements.txt pins what the server needs (Railway installs it too), requirements-dev.txt adds the
# tools. Both are resolved by uv for every platform and Python 3.11+, with hashes. Existing pins are kept unless
# pyproject.toml no longer allows them; the dev lock is constrained to the server's pins so both agree.
COMPILE := $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock'

lock: $(VENV)/.installed-dev
	$(COMPILE) $(UPGRADE) -o requirements.txt
	$(COMPILE) $(UPGRADE) --extra dev -c requirements.txt -o requirements-dev.txt
	$(BIN)/python -m tests.lock_check

upgrade:
	$(MAKE) lock UPGRADE=$(if $(PACKAGE),--upgrade-package $(PACKAGE),--upgrade)

outdated: $(VENV)/.installed-dev
	$(BIN)/python -m pip list --outdated

# Stamp files. A changed lock builds the environment afresh, so it holds exactly the pinned packages and nothing
# left over from an older lock. The dev environment is a superset, so it stands for the plain one too.
define fresh_venv
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "This project needs Python 3.11 or newer as '$(PYTHON)', found: $$($(PYTHON) --version 2>/dev/null || echo nothing)." >&2; \
		echo "Install it, or name one that is: make $(or $(MAKECMDGOALS),run) PYTHON=python3.12" >&2; \
		exit 1; \
	}
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(1)
	$(BIN)/python -m pip check
endef

$(VENV)/.installed: requirements.txt
	$(call fresh_venv,requirements.txt)
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt
	$(call fresh_venv,requirements-dev.txt)
	touch $@ $(VENV)/.installed
