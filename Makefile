# Fresh machine: only python3 and make are needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := demo

.PHONY: install demo test bench example clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mgold build --preset demo -w $(DEMO)/warehouse.duckdb

test: $(STAMP)
	bash .ci/setup-chromium    # headless Chromium for the report test (never fails; skips when present)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/mgold bench

# the committed warehouse.duckdb.example: the tiny preset built end to end, spectra cut (pipeline/example.py)
example: $(STAMP)
	rm -rf build/example && $(BIN)/mgold build --preset tiny -w build/example/tiny.duckdb
	$(BIN)/python -m mgold.pipeline.example build/example/tiny.duckdb warehouse.duckdb.example

clean:
	rm -rf $(VENV) $(DEMO) bench/results/*.json
