# Every target sets up what it needs: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The agent's shell runs inside Claude Code's sandbox: bubblewrap and socat on Linux (Debian's
# packages). The real `claude` itself comes with aictl: the claude-agent-sdk wheel carries it.
SANDBOX_PACKAGES := bubblewrap socat
# The dashboard's end-to-end tests run in a real headless Chromium (Debian's package), driven
# by Playwright with executable_path=/usr/bin/chromium (never `playwright install`).
BROWSER_PACKAGES := chromium
# The store's tests run on PostgreSQL too: Debian's server, started by the suite in a
# temporary folder on 127.0.0.1 (tests/pgserver.py) unless AICTL_TEST_PG names a server.
POSTGRES_PACKAGES := postgresql

.PHONY: install sandbox browser postgres test test-fast lint format bench demo docs docs-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## virtual environment with aictl and the dev tools

sandbox: ## bubblewrap and socat for the agent's sandbox (installed with apt-get when missing)
	@if command -v bwrap >/dev/null && command -v socat >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(SANDBOX_PACKAGES) for the agent's sandbox"; \
		(apt-get install -y -qq $(SANDBOX_PACKAGES) >/dev/null 2>&1 \
		 || (apt-get update -qq >/dev/null && apt-get install -y -qq $(SANDBOX_PACKAGES) >/dev/null)) \
		|| { echo "error: apt-get could not install $(SANDBOX_PACKAGES)" >&2; exit 1; }; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then \
		sudo apt-get install -y -qq $(SANDBOX_PACKAGES) >/dev/null \
		|| { echo "error: apt-get could not install $(SANDBOX_PACKAGES)" >&2; exit 1; }; \
	else \
		echo "error: the agent's sandbox needs bubblewrap and socat; install them" \
		     "(Debian/Ubuntu: sudo apt-get install $(SANDBOX_PACKAGES))," \
		     "or set 'sandbox: off' in .ai/policy.yaml at your own risk" >&2; exit 1; \
	fi

browser: ## headless Chromium for the dashboard's browser tests (apt-get when missing)
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(BROWSER_PACKAGES) for the dashboard's browser tests"; \
		(apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null 2>&1 \
		 || (apt-get update -qq >/dev/null && apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null)) \
		|| { echo "error: apt-get could not install $(BROWSER_PACKAGES)" >&2; exit 1; }; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then \
		sudo apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null \
		|| { echo "error: apt-get could not install $(BROWSER_PACKAGES)" >&2; exit 1; }; \
	else \
		echo "error: the dashboard's browser tests need Chromium at /usr/bin/chromium" \
		     "(Debian/Ubuntu: sudo apt-get install $(BROWSER_PACKAGES))" >&2; exit 1; \
	fi

postgres: ## PostgreSQL's server for the store's tests on that backend (apt-get when missing)
	@if [ -n "$$AICTL_TEST_PG" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(POSTGRES_PACKAGES) for the store's tests on PostgreSQL"; \
		(apt-get install -y -qq $(POSTGRES_PACKAGES) >/dev/null 2>&1 \
		 || (apt-get update -qq >/dev/null && apt-get install -y -qq $(POSTGRES_PACKAGES) >/dev/null)) \
		|| { echo "error: apt-get could not install $(POSTGRES_PACKAGES)" >&2; exit 1; }; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then \
		sudo apt-get install -y -qq $(POSTGRES_PACKAGES) >/dev/null \
		|| { echo "error: apt-get could not install $(POSTGRES_PACKAGES)" >&2; exit 1; }; \
	else \
		echo "error: the store's tests on PostgreSQL need its server" \
		     "(Debian/Ubuntu: sudo apt-get install $(POSTGRES_PACKAGES))," \
		     "or AICTL_TEST_PG set to a server's URL" >&2; exit 1; \
	fi

test: $(STAMP) sandbox browser postgres ## the whole suite, with coverage (fails under 80%)
	$(BIN)/coverage erase
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest --cov --cov-report=term -p no:cacheprovider
	$(BIN)/python tests/coverage_by_package.py

test-fast: $(STAMP) ## the suite without the slow concurrency tests
	$(BIN)/pytest -m "not slow" -q

lint: $(STAMP) ## ruff and mypy, as CI runs them
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## measured figures with a same-run baseline (see bench/README.md)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench

demo: $(STAMP) sandbox ## a scripted walk through aictl on a throw-away repository
	PATH="$(CURDIR)/$(BIN):$$PATH" bash docs/demo.sh

docs: $(STAMP) ## regenerate docs/cli.md from the CLI itself
	$(BIN)/python -m aictl.docgen > docs/cli.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
