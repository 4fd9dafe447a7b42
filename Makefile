# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $@

# Dagster webserver (:3000) + daemon with the demo pipelines on a demo source.
run: install
	$(BIN)/summit-etl serve

# Lint and type-check, then the whole suite against real PostgreSQL and real Dagster.
test: install
	$(BIN)/ruff check summit_etl summit_etl_tests api_shim bench
	$(BIN)/mypy summit_etl api_shim
	@# pytest exits 5 when it collects nothing: a missing suite is a failure, said plainly.
	$(BIN)/pytest || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests" >&2; exit $$rc; }

# Every benchmark of docs/benchmarks.md, one after another (about an hour on 2 cores); each
# prints its table with the baselines it ran in the same process. BENCH=name runs one.
BENCHES ?= load_throughput merge_speed slices cdc_lag run_start run_overhead api_latency verify_speed quality_overhead
bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	@set -e; for b in $(if $(BENCH),$(BENCH),$(BENCHES)); do \
		echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py; done
