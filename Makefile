# One task runner. `.ci/run` calls `make test`; the README documents `make demo` and `make test`.
# The first interpreter that runs and is 3.11 or 3.12 (pyenv shims may exist but not run).
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' 2>/dev/null && echo $$p && break; \
	done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/screening: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or 3.12 is required (durable-rules does not import on 3.13)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dask]'
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
