# TraderLens: `make run` serves the app (creating and seeding the demo database on first use),
# `make test` runs the whole suite on DuckDB and PostgreSQL, browser tests included.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# Empty: .streamlit/config.toml's server.address (127.0.0.1) or STREAMLIT_SERVER_ADDRESS; 0.0.0.0 serves every interface.
ADDRESS ?=

.PHONY: run test lint bench bench-simulator bench-analytics bench-pages services clean-db

$(VENV)/.requirements.stamp: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev.stamp: $(VENV)/.requirements.stamp requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.requirements.stamp
	$(PY) cli.py serve --server.port $(PORT) --server.headless true $(if $(ADDRESS),--server.address $(ADDRESS))

# Browser tests need Debian's Chromium (never a Playwright browser download).
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq chromium || (apt-get update -qq && apt-get install -y -qq chromium)); \
	else echo "Chromium missing: run 'sudo apt-get install -y chromium'"; fi

# PostgreSQL is started by this kind of machine; start it again if it has stopped.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
	  (pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start && sleep 2) || \
	  echo "PostgreSQL could not be started; its tests skip (and fail under CI=true)"

# lint-imports checks the architecture contracts of pyproject.toml ([tool.importlinter]).
test: $(VENV)/.dev.stamp /usr/bin/chromium services
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-logo
	$(PY) -m pytest -q

lint: $(VENV)/.dev.stamp
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-logo

bench-simulator: $(VENV)/.requirements.stamp services
	$(PY) benchmarks/simulator_bench.py

# Analytics functions on 200,000 traders (DuckDB, PostgreSQL, naive pandas); generates the data once.
bench-analytics: $(VENV)/.dev.stamp services
	$(PY) benchmarks/analytics_bench.py --prepare --naive-runs 1

# The four analytics pages in Debian's Chromium on the 20,000-trader demo database.
bench-pages: $(VENV)/.dev.stamp /usr/bin/chromium
	$(PY) benchmarks/pages_bench.py

bench: bench-simulator bench-analytics bench-pages

clean-db:
	rm -f data/traderlens.duckdb data/traderlens.duckdb.wal
