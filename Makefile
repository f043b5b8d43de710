# One task runner. `.ci/run` calls `make test`; the README documents `make demo` and `make test`.
#
# The interpreter: PYTHON if given (`make test PYTHON=python3.13`), else the first of python3,
# python3.13, python3.12, python3.11 that runs and is 3.11 to 3.13. A name whose pyenv shim
# does not run (that version is installed but not selected) is looked up in pyenv's versions.
PYENV_VERSIONS := $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions
find_python = $(shell for p in $(1); do \
	for c in $$p $$(ls -d $(PYENV_VERSIONS)/*/bin/$$p 2>/dev/null); do \
	$$c -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 14))' 2>/dev/null && echo $$c && exit; \
	done; done)
ifdef PYTHON
PY := $(call find_python,$(PYTHON))
else
PY := $(call find_python,python3 python3.13 python3.12 python3.11)
endif
PY_VERSION := $(if $(PY),$(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'))
# One venv per interpreter asked for: `make test PYTHON=python3.13` uses .venv-3.13 and leaves .venv alone.
VENV ?= $(if $(PYTHON),.venv-$(PY_VERSION),.venv)
BIN := $(VENV)/bin
# durable-rules 2.0.28 is a source release that calls PyEval_CallObject, which Python 3.13
# removed. Its setup.py overwrites CFLAGS but the compiler still reads CPPFLAGS, so this
# define builds it on 3.13 (and changes nothing on 3.11 and 3.12, whose headers define the
# name). --no-cache-dir: pip's wheel cache would otherwise reuse a wheel built without the
# define (--no-binary does not bypass that cache). The pin is read from pyproject.toml.
DURABLE := $(shell grep -o 'durable-rules==[0-9.]*' pyproject.toml)
DURABLE_CPPFLAGS := -DPyEval_CallObject=PyObject_CallObject

# The modules mypyc compiles when the package is installed (listed in pyproject.toml, built by
# hatch_build.py): an edit to one reinstalls, which compiles it again.
COMPILED := $(shell sed -n '/^\[tool.hatch.build.hooks.custom\]/,/^]/p' pyproject.toml | grep -o 'screening/[^"]*\.py')

.PHONY: demo test lint install clean smoke-pure

$(BIN)/screening: pyproject.toml hatch_build.py $(COMPILED)
	@test -n "$(PY)" || { echo "Python 3.11, 3.12 or 3.13 is required; $(or $(PYTHON),python3) is not one that runs"; exit 1; }
	@test ! -x $(BIN)/python || $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != tuple(map(int, "$(PY_VERSION)".split("."))))' \
		|| { echo "$(VENV) is not Python $(PY_VERSION): give another VENV=, or remove $(VENV)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	CPPFLAGS="$(DURABLE_CPPFLAGS)" $(BIN)/pip install --quiet --no-cache-dir '$(DURABLE)'
	$(BIN)/pip install --quiet -e '.[test,dask]'
	$(BIN)/python -c 'import durable.lang'
	@touch $@

install: $(BIN)/screening

demo: install
	$(BIN)/screening rules validate
	@for f in examples/*.json; do echo; echo "== $$f"; $(BIN)/screening check $$f --as-of 2026-11-22 || exit 1; done

lint: install
	$(BIN)/ruff check screening tests $(wildcard bench) hatch_build.py
	$(BIN)/ruff format --check screening tests $(wildcard bench) hatch_build.py
	$(BIN)/mypy

test: lint
	$(BIN)/screening --version
	$(BIN)/screening rules test --coverage --min-coverage 100
	$(BIN)/pytest

# The pure-Python build (what an install without a C compiler gets), in a venv of its own, on
# Python 3.12 by default: an editable install removes the in-place compiled modules of its own
# Python version, and the compiled venvs are 3.11 and 3.13. The rule tests, a batch and a few
# fast tests; `make test` runs everything on the compiled build.
SMOKE_TESTS := tests/test_build.py tests/test_decision.py tests/test_facts_speed_equivalence.py \
	tests/test_decision_speed_equivalence.py tests/test_aggregates_reasons.py tests/test_windows.py \
	tests/test_batch_detail.py
smoke-pure:
	$(MAKE) install PYTHON=$(or $(PYTHON),python3.12) VENV=.venv-pure SCREENING_PURE_PYTHON=1
	.venv-pure/bin/screening --version | grep -q 'pure Python' || { .venv-pure/bin/screening --version; exit 1; }
	.venv-pure/bin/screening rules test
	.venv-pure/bin/screening batch examples/ --as-of 2026-11-22 -o build/smoke-pure.jsonl --force
	SCREENING_EXPECT_BUILD=pure .venv-pure/bin/pytest -p no:cacheprovider $(SMOKE_TESTS)

clean:
	rm -rf .venv .venv-* .pytest_cache .mypy_cache .ruff_cache build/mypyc
	find screening -name '*.so' -delete
