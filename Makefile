# One task runner. `.ci/run` calls `make test`; the README documents `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.12 || command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/screening: pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v < (3, 13) else "Python 3.11 or 3.12 is required (durable-rules does not import on 3.13); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/screening

demo: install
	$(BIN)/screening rules validate
	@for f in examples/*.json; do echo; echo "== $$f"; $(BIN)/screening check $$f --as-of 2026-11-22 || exit 1; done

lint: install
	$(BIN)/ruff check screening tests $(wildcard bench)
	$(BIN)/ruff format --check screening tests $(wildcard bench)
	$(BIN)/mypy

test: lint
	$(BIN)/screening rules test
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
