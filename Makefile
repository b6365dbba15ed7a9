# citybrain — everything a fresh machine needs goes through these targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
CITYBRAIN := $(VENV)/bin/citybrain
PORT ?= 8080

.PHONY: demo serve test lint typecheck unit bench reliability clean test-deps wheel

# the runtime only (make demo); the test and dev tools come with $(DEVSTAMP) (make test)
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "citybrain needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $(STAMP)

$(DEVSTAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(DEVSTAMP)

## make demo: install, start the demo city (SQLite, in-process bus, recorded Beijing data) and serve it
demo: $(STAMP)
	$(CITYBRAIN) serve --demo --auth off --store var/demo.db --port $(PORT)

serve: $(STAMP)
	$(CITYBRAIN) serve

## make test: install everything the tests need, then ruff, mypy and the whole test suite
test: $(DEVSTAMP) test-deps lint typecheck unit

test-deps: $(DEVSTAMP)
	@bash scripts/test-deps.sh

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check citybrain tests bench reliability

typecheck: $(DEVSTAMP)
	$(VENV)/bin/mypy

unit: $(DEVSTAMP)
	$(PY) -m pytest -q --timeout=300 -p no:cacheprovider $(PYTEST_ARGS)

## make wheel: build dist/citybrain-<version>-py3-none-any.whl (runtime files included; tests/test_wheel.py checks it)
wheel: $(STAMP)
	$(PY) -m pip wheel -q --no-deps -w dist .

## make bench: every benchmark against its peer; results in bench/results/
bench: $(DEVSTAMP) test-deps
	bash scripts/bench-deps.sh
	$(PY) bench/run.py

## make reliability: crash, dependency faults, partition, fuzz, soak, overload (not in CI); ends with a table
reliability: $(DEVSTAMP)
	$(PY) reliability/run.py

clean:
	rm -rf $(VENV) build dist var .mypy_cache .ruff_cache .pytest_cache
