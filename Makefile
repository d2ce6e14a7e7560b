# Every target sets up what it needs: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The real Claude Code CLI for the e2e tests, from npm into the git-ignored .tools/ (the native
# binary ships in a platform package of the same registry). The stamp names the pinned version:
# changing the pin reinstalls, and so does a missing binary.
CLAUDE_CODE_VERSION := 2.1.197
CLAUDE_BIN   := .tools/node_modules/.bin/claude
CLAUDE_STAMP := .tools/claude-code-$(CLAUDE_CODE_VERSION).installed

.PHONY: install tools test test-fast lint format bench demo docs docs-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## virtual environment with aictl and the dev tools

tools: ## the real Claude Code CLI in .tools/ (needs node and npm)
	@if [ ! -x $(CLAUDE_BIN) ] || [ ! -f $(CLAUDE_STAMP) ]; then \
		npm install --no-audit --no-fund --prefix .tools @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) \
		&& touch $(CLAUDE_STAMP); \
	fi

test: $(STAMP) tools ## the whole suite, with coverage (fails under 80%)
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

demo: $(STAMP) tools ## a scripted walk through aictl on a throw-away repository
	PATH="$(CURDIR)/$(BIN):$$PATH" bash docs/demo.sh

docs: $(STAMP) ## regenerate docs/cli.md from the CLI itself
	$(BIN)/python -m aictl.docgen > docs/cli.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
