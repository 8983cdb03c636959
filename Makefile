# Set-up and everyday commands. Every target creates the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install run bench test test-fast check format params-doc clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,serve]'
	$(BIN)/nmtpipe plots-template .dvc/offline-plots.html  # dvc plots without a CDN
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install nmtpipe with its dependencies

run: install  ## run the whole pipeline (dvc repro) with params.yaml
	dvc repro

bench: install  ## training/translation speed of data/model on this machine (BENCH_ARGS=...)
	nmtpipe bench --model data/model --split data/split --params params.yaml \
		--metrics reports/metrics.json $(BENCH_ARGS)

TEST_WORKERS ?= 2
test: install  ## run the test suite, a test file per worker (TEST_WORKERS=0: all in this process)
	pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

test-fast: install  ## the fast tier: every test not marked slow (under 1.5 minutes on 2 cores)
	pytest -n $(TEST_WORKERS) -m "not slow"

check: install  ## lint and format check
	ruff check src tests
	ruff format --check src tests

format: install
	ruff format src tests
	ruff check --fix src tests

params-doc: install  ## regenerate docs/params.md and params.yaml's comments from config.py
	nmtpipe params-doc

clean-venv:
	rm -rf $(VENV)
