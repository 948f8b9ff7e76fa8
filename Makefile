# scimgate developer tasks. GNU make.
#   make run    install, migrate, load the demo directory, serve on http://127.0.0.1:8000 (RUN_ADDR=...)
#   make test   check the import layers (lint-imports, contracts in pyproject.toml), then run
#               the test suite (PYTEST_ARGS="-k token -x" to pass options); the browser
#               tests (tests/browser, Playwright) run when /usr/bin/chromium exists, else skip
#   make test-browser  only the browser tests; screenshots land in tests/screenshots/
#   make lint   ruff
#   make bench  enterprise-scale benchmark on PostgreSQL (DATABASE_URL, default the local
#               scimgate_bench database): synthetic data loaded once, gunicorn, table + bench/results/
#   make clean  remove the virtualenv, caches and build output (keeps var/, the database)

VENV ?= .venv
PYTHON ?= python3
PYTEST_ARGS ?=
RUN_ADDR ?= 127.0.0.1:8000

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-browser lint clean bench

install: $(STAMP)

# Re-run when the dependencies change; the stamp lives in the venv, so removing the venv resets it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

var:
	mkdir -p $@

# DEBUG=true: WhiteNoise serves static files straight from static/ (no collectstatic).
# SCIMGATE_MFA_REQUIRED=false: the demo administrator signs in with the printed password
# alone (an authenticator can be added under Security); production requires MFA.
run: $(STAMP) | var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py loaddemo
	DEBUG=true SCIMGATE_MFA_REQUIRED=$${SCIMGATE_MFA_REQUIRED:-false} $(BIN)/python manage.py runserver $(RUN_ADDR)

test: $(STAMP)
	$(BIN)/lint-imports --no-logo
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

test-browser: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider -m browser tests/browser $(PYTEST_ARGS)

BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/scimgate_bench
BENCH_ARGS ?=

# Creates the database if missing, migrates, loads synthetic data once (reused when present).
# SCIMGATE_BENCHMARK=true installs the benchmark app, which provides runbench.
bench: $(STAMP)
	SCIMGATE_BENCHMARK=true DATABASE_URL=$${DATABASE_URL:-$(BENCH_DATABASE_URL)} \
		$(BIN)/python manage.py runbench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info staticfiles .pytest_cache .ruff_cache .import_linter_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
