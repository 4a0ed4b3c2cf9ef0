# Two commands do everything on a fresh machine:
#   make demo   - create .venv if missing, install hedgebt with test extras, run the bundled demo
#   make test   - same set-up, then the test suite without the few slow tests (CI; ~3 min)
#   make test-all - the same with the slow tests (wheel, memory bounds, full-size report)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= out/demo

.PHONY: demo test test-all bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hedgebt demo --out $(OUT) --force

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
