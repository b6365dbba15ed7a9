# citybrain — everything a fresh machine needs goes through these targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CITYBRAIN := $(VENV)/bin/citybrain
PORT ?= 8080

.PHONY: demo serve test lint typecheck unit bench reliability clean test-deps

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "citybrain needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## make demo: install, start the demo city (SQLite, in-process bus, recorded Beijing data) and serve it
demo: $(STAMP)
	$(CITYBRAIN) serve --demo --auth off --store var/demo.db --port $(PORT)

serve: $(STAMP)
	$(CITYBRAIN) serve

## make test: install everything the tests need, then ruff, mypy and the whole test suite
test: $(STAMP) test-deps lint typecheck unit

test-deps: $(STAMP)
	@bash scripts/test-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check citybrain tests bench reliability

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q --timeout=300 -p no:cacheprovider $(PYTEST_ARGS)

## make bench: every benchmark against its peer; results in bench/results/
bench: $(STAMP) test-deps
	bash scripts/bench-deps.sh
	$(PY) bench/run.py

## make reliability: crash, dependency faults, partition, fuzz, soak, overload (not in CI); ends with a table
reliability: $(STAMP)
	$(PY) reliability/run.py

clean:
	rm -rf $(VENV) build var .mypy_cache .ruff_cache .pytest_cache
