# Accord developer tasks. `make run` starts a demo server, `make test` lints and tests.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ACCORD_HOME ?= $(CURDIR)/.accord-demo
PORT ?= 8640
LINT_PATHS := $(wildcard src tests benchmarks tools)

.PHONY: .venv run lint services test test-ahead bench docs messages clean

# The virtualenv; (re)installed whenever pyproject.toml is newer than the stamp.
.venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

# The first run seeds the demo organisation (members log in with 'northwind demo password').
run: .venv
	test -e $(ACCORD_HOME)/node.key || $(BIN)/accord demo --data $(ACCORD_HOME)
	$(BIN)/accord serve --data $(ACCORD_HOME) --host 127.0.0.1 --port $(PORT)

lint: .venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy src
	$(BIN)/lint-imports --no-cache

# PostgreSQL, Dovecot and Chromium: installed (as root) and started, or named loudly.
services:
	bash tools/test-services.sh

test: .venv lint services
	$(BIN)/python -m pytest -n 2 --dist worksteal

# The modules that read the calendar, once more with the process clock a year ahead:
# a test that only passes before some date fails here today (CI runs it after `make test`).
CLOCK_SENSITIVE := tests/web tests/api tests/service tests/integrations tests/auth \
	tests/channels/test_webchat.py tests/channels/connectors tests/outcomes/test_api.py \
	tests/ops/test_observability.py tests/privacy tests/test_clock_guard.py
test-ahead: .venv services
	ACCORD_TEST_CLOCK_OFFSET_DAYS=365 $(BIN)/python -m pytest -n 2 -m 'not slow' $(CLOCK_SENSITIVE)

docs: .venv
	$(BIN)/python tools/cli_reference.py

bench: .venv
	$(BIN)/python benchmarks/run.py --quick

# Leaves .accord-demo/ alone: it holds the demo's data.
clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -not -path './.git/*' -exec rm -rf {} +

# The portal's catalogues (docs/web.md, "Languages"): extract every marked text into
# messages.pot and merge it into each language's .po; translate the new entries, then
# `pytest tests/web/test_portal_phone.py` checks that none is left untranslated.
messages: .venv
	$(BIN)/pybabel extract -F pyproject.toml --no-location --sort-output \
		--project=Accord --copyright-holder="Accord contributors" \
		-o src/accord/web/locale/messages.pot src/accord/web
	$(BIN)/pybabel update -i src/accord/web/locale/messages.pot -d src/accord/web/locale \
		--ignore-obsolete --no-fuzzy-matching
