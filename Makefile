# TraderLens: `make run` serves the app (creating and seeding the demo database on first use),
# `make test` runs the whole suite on DuckDB and PostgreSQL, browser tests included.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# Empty: .streamlit/config.toml's server.address (127.0.0.1) or STREAMLIT_SERVER_ADDRESS; 0.0.0.0 serves every interface.
ADDRESS ?=

.PHONY: run test lint bench bench-simulator bench-analytics bench-pages services clean-db

# XGBoost comes as its CPU build (package xgboost-cpu: the same `xgboost` module, 18 MB) unless XGBOOST=gpu,
# which installs the CUDA build (package xgboost with NVIDIA's NCCL, 697 MB installed). Each choice has its
# own stamp, so switching reinstalls.
XGBOOST ?= cpu
REQUIREMENTS_STAMP := $(VENV)/.requirements-$(XGBOOST).stamp

# pip lists every package it downloads and installs (a first install fetches about 400 MB), so a first
# `make run` shows its progress instead of sitting silent for a minute or more. --no-compile: Python compiles
# only the modules it imports, when it first imports them, instead of pip compiling all of them up front
# (63 s -> 34 s for requirements.txt from local wheels on this 2-core machine; benchmarks in README.md).
$(REQUIREMENTS_STAMP): requirements.txt
	@test -x $(PY) || { echo "==> Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> Installing the app's packages into $(VENV) (requirements.txt, XGBoost $(XGBOOST) build)"
	$(PY) -m pip install --upgrade pip
ifeq ($(XGBOOST),gpu)
	$(PY) -m pip uninstall --yes xgboost-cpu
	sed 's/^xgboost-cpu==/xgboost==/' requirements.txt > $(VENV)/requirements-gpu.txt
	$(PY) -m pip install --no-compile -r $(VENV)/requirements-gpu.txt
else
	@# Both builds install the module `xgboost`: remove the CUDA build an older requirements.txt or XGBOOST=gpu left.
	$(PY) -m pip uninstall --yes xgboost nvidia-nccl-cu12
	$(PY) -m pip install --no-compile -r requirements.txt
endif
	rm -f $(VENV)/.requirements*.stamp
	touch $@
	@echo "==> $(VENV) is ready"

# The suite starts dozens of Python processes (CLI runs, app servers). Where PYTHONDONTWRITEBYTECODE is set
# (as on CI machines) Python never caches what it compiles, and each of them recompiled pandas, SQLAlchemy
# and Streamlit: 3.3 s to import them against 1.1 s from bytecode, and a clean-clone `make test` took 15 min.
# Compiling the venv once takes 9 s.
$(VENV)/.dev.stamp: $(REQUIREMENTS_STAMP) requirements-dev.txt
	@echo "==> Installing the test tools into $(VENV) (requirements-dev.txt)"
	$(PY) -m pip install --no-compile -r requirements-dev.txt
	@echo "==> Byte-compiling $(VENV) for the test processes"
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || echo "(some files did not compile; Python compiles them on import)"
	touch $@

run: $(REQUIREMENTS_STAMP)
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
# Two pytest workers (pytest-xdist), each test file whole in one of them (module fixtures, one seeded
# demo per worker): much of the suite waits on PostgreSQL, subprocesses and a browser, so the two cores
# overlap those waits. 1,547 tests: 10 min 49 s against 20 min 50 s in one process on a busy machine; 1,682 from a
# clean clone: 12 min 58 s in all (README.md, "Tests").
# PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 2
test: $(VENV)/.dev.stamp /usr/bin/chromium services
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-logo
	$(PY) -m pytest -q $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

lint: $(VENV)/.dev.stamp
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-logo

bench-simulator: $(REQUIREMENTS_STAMP) services
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
