# OpenWA: `make run` starts the whole platform, `make test` runs the whole suite.
# Both create the virtual environment and install what they need first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
PYTEST_ARGS ?=
# The wa-js bundle the selenium engine injects: from the npm registry, never committed.
WAJS_VERSION := 4.6.0
WAJS_DIR := .tools/wa-js
WAJS_BUNDLE := $(WAJS_DIR)/node_modules/@wppconnect/wa-js/dist/wppconnect-wa.js

.PHONY: run test install install-test lint bench bench-quick bench-many bench-selenium bench-profile bench-history clean help wajs fuzz

help:
	@echo "make run     install, migrate and start API, session host, worker, beat and Flower"
	@echo "make test    install and run the whole test suite (CI=true: nothing may skip)"
	@echo "make lint    flake8, isort and mypy"
	@echo "make fuzz    schemathesis over the whole OpenAPI document against a running platform"
	@echo "make wajs    install the @wppconnect/wa-js bundle (selenium engine) into $(WAJS_DIR)"
	@echo "make bench   measure the platform beside this machine's limits (bench-quick: < 2 min)"
	@echo "make bench-many / bench-selenium / bench-profile / bench-history   many sessions, 10 browsers, py-spy, history length"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base: $(PY) requirements/base.txt setup.cfg pyproject.toml
	$(PIP) -r requirements/base.txt
	$(PIP) --no-deps -e .
	@touch $@

$(VENV)/.test: $(VENV)/.base requirements/test.txt
	$(PIP) -r requirements/test.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.test requirements/dev.txt
	$(PIP) -r requirements/dev.txt
	@touch $@

install: $(VENV)/.base
install-test: $(VENV)/.test

# Re-installed when the pinned version changes; needs npm (apt-get install npm).
$(WAJS_DIR)/.installed-$(WAJS_VERSION):
	mkdir -p $(WAJS_DIR)
	npm install --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
		--prefix $(WAJS_DIR) @wppconnect/wa-js@$(WAJS_VERSION)
	test -s $(WAJS_BUNDLE)
	rm -f $(WAJS_DIR)/.installed-*
	@touch $@

wajs: $(WAJS_DIR)/.installed-$(WAJS_VERSION)

run: install
	$(BIN)/openwa run

# Three pytest runs, two at once (scripts/test-suite.sh). The selenium tests need the bundle; without npm they skip locally (and fail in CI).
test: install-test
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory wajs; fi
	PY=$(PY) bash scripts/test-suite.sh $(PYTEST_ARGS)

# Schemathesis, every check on, fixed seed and budget (FUZZ_SEED, FUZZ_MAX_EXAMPLES), against
# the real processes on loopback (issue 16). Reports in fuzz-report/.
fuzz: install-test
	$(PY) scripts/fuzz.py

lint: $(VENV)/.dev
	$(BIN)/flake8 app tasks engines tests scripts/fuzz.py scripts/fuzz_hooks.py celeryconfig.py wsgi.py
	$(BIN)/isort --check-only app tasks engines tests celeryconfig.py wsgi.py
	$(BIN)/mypy

# Benchmarks against this machine's own limits (issue 8): Redis DB 15 and PostgreSQL on
# 127.0.0.1 by default (BENCH_REDIS_URL, BENCH_PG_ADMIN). Results in bench-results/.
bench: install-test
	$(PY) scripts/bench/run.py

bench-quick: install-test
	$(PY) scripts/bench/run.py --quick

# Issue 18: 10 -> 100 mock sessions over 4 session hosts; 10 selenium sessions on one host;
# py-spy profile of the send path (each a few minutes, each its own process set).
bench-many: install-test
	$(PY) scripts/bench/many_sessions.py

bench-selenium: install-test
	PYTHONPATH=scripts/bench $(PY) scripts/bench/selenium_sessions.py

bench-profile: install-test $(VENV)/.dev
	$(PY) scripts/bench/profile_send.py

# Issue 18: one send's cost beside an empty and a 200,000-message history, both databases.
bench-history: install-test
	$(PY) scripts/bench/history_growth.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
