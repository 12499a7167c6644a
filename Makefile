# Two commands a new user needs: `make train` and `make test`. Everything else is optional.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install install-dev train test test-fast lint format bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps make re-runs instant; they are rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	@touch $@

# `sweeps` (W&B's sweep engine) supplies the sweep-config schema the tests validate against; it
# pins numpy<2 for its samplers only, so it goes in without its dependencies.
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install -e '.[dev]'
	$(PIP) install --no-deps 'sweeps>=0.3'
	@touch $@

install: $(VENV)/.installed  ## create .venv and install convattn

install-dev: $(VENV)/.installed-dev  ## install with the dev extra (pytest, ruff)

train: install  ## train the default job (resnet on embedded digits); extra Hydra overrides via ARGS="..."
	$(VENV)/bin/convattn-train $(ARGS)

test: install-dev  ## ruff + the whole test suite (what CI runs)
	$(VENV)/bin/ruff check src tests scripts
	$(PY) -m pytest $(ARGS)

test-fast: install-dev  ## skip tests marked slow
	$(PY) -m pytest -m "not slow" $(ARGS)

lint: install-dev  ## ruff check + format check
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

format: install-dev  ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix src tests scripts
	$(VENV)/bin/ruff format src tests scripts

bench: install  ## framework overhead vs a plain PyTorch loop
	$(PY) scripts/bench_overhead.py

clean:  ## remove logs and caches (keeps .venv)
	rm -rf logs multirun outputs wandb .pytest_cache .ruff_cache
