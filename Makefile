# agentops: `make run` starts everything on embedded defaults; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test lint format bench bench-pages clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit("agentops needs Python 3.11 or newer" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.dev-deps: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(PY) manage.py up --port $(PORT)

test: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

# Each script prints its figures (see BENCHMARKS.md); they use their own PostgreSQL databases.
bench: $(VENV)/.dev-deps
	$(PY) bench/bench_runner.py
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_ingest_floor.py
	$(PY) bench/bench_otlp.py
	$(PY) bench/bench_masking.py
	$(PY) bench/bench_prune.py

# The pages benchmark needs a big database first (a few minutes for a million runs: each run's
# search document is computed by the database as it is loaded).
bench-pages: $(VENV)/.dev-deps
	-createdb -h 127.0.0.1 -U postgres agentops_bench
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentops_bench $(PY) manage.py migrate
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentops_bench $(PY) manage.py generate_data --runs 1000000 --big-run-steps 10000
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentops_bench $(PY) bench/bench_pages.py

lint: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
