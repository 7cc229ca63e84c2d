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

# the real MILES K/M stars, when ../shared is beside the clone: mgold's accuracy on real spectra
# (`mgold report golden`, the report's headline table); the build's report is redrawn with them.
# Exit 3 is ingest's "some input rejected": MILES_params.db has one row it cannot parse (a 7,950 K star)
MILES  := ../shared/data/real/libraries/miles_k_m_stars

demo: $(STAMP)
	$(BIN)/mgold build --preset demo -w $(DEMO)/warehouse.duckdb
	@if [ -d $(MILES) ]; then \
	  { $(BIN)/mgold ingest library miles $(MILES) -w $(DEMO)/warehouse.duckdb || [ $$? -eq 3 ]; } && \
	  $(BIN)/mgold report html -w $(DEMO)/warehouse.duckdb --out $(DEMO)/warehouse_files/report; \
	else echo "($(MILES) absent: no real-spectra leave-one-out)"; fi

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
