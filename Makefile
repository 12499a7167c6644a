# Two commands a new user needs: `make train` and `make test`. Everything else is optional.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
ARGS   ?=
# The versions make test last passed with; CONSTRAINTS= installs the newest releases instead.
CONSTRAINTS ?= constraints.txt
PIN    := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
# Both cores; the Slurm and DDP tests share one worker (xdist_group "processes").
PYTEST := $(PY) -m pytest -n 2 --dist loadgroup --durations=25

.DEFAULT_GOAL := help
.PHONY: help install install-dev lock train test test-fast lint format bench results clean slurm-start slurm-stop

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps make re-runs instant; they are rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install -e . $(PIN)
	@touch $@

# `sweeps` (W&B's sweep engine) supplies the sweep-config schema the tests validate against; it
# pins numpy<2 for its samplers only, so it goes in without its dependencies.
$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) $(VENV)/.installed
	$(PIP) install -e '.[dev]' $(PIN)
	$(PIP) install --no-deps 'sweeps>=0.3' $(PIN)
	@touch $@

install: $(VENV)/.installed  ## create .venv and install convattn

install-dev: $(VENV)/.installed-dev  ## install with the dev extra (pytest, ruff)

lock: install-dev  ## rewrite constraints.txt from the dev environment (after changing dependencies)
	@{ sed -n '/^#/p' constraints.txt; $(PIP) freeze --exclude-editable | grep -v '^convattn'; } > constraints.tmp
	@mv constraints.tmp constraints.txt

train: install  ## train the default job (resnet on embedded digits); extra Hydra overrides via ARGS="..."
	$(VENV)/bin/convattn-train $(ARGS)

# The Slurm tests need the local cluster: started for the run (and stopped after) unless it
# is already up. Its config and state live in one dir that `stop` removes; clients find it
# through SLURM_CONF, exported here for pytest. Packages the tests need (Slurm's among them)
# are installed once by scripts/install_debian_packages.sh (root, or it asks sudo).
SUDO  := $(if $(filter 0,$(shell id -u)),,sudo)
SLURM := $(SUDO) $(if $(CONVATTN_SLURM_DIR),CONVATTN_SLURM_DIR=$(CONVATTN_SLURM_DIR)) scripts/slurm_local.sh

test: install-dev  ## ruff + the whole suite on both cores, with a local Slurm cluster (what CI runs)
	$(VENV)/bin/ruff check src tests scripts
	scripts/install_debian_packages.sh
	@eval "$$(scripts/slurm_local.sh env)"; \
	if $(SLURM) status >/dev/null 2>&1; then $(PYTEST) $(ARGS); \
	else $(SLURM) start && { $(PYTEST) $(ARGS); status=$$?; $(SLURM) stop; exit $$status; }; fi

test-fast: install-dev  ## skip tests marked slow (and so the Slurm tests)
	$(PYTEST) -m "not slow" $(ARGS)

lint: install-dev  ## ruff check + format check
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

format: install-dev  ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix src tests scripts
	$(VENV)/bin/ruff format src tests scripts

bench: install  ## framework overhead: epochs vs a plain loop, start-up vs the import floor, image folders vs a timm loop
	$(PY) scripts/bench_overhead.py
	$(PY) scripts/bench_startup.py
	$(PY) scripts/bench_overhead.py --imagefolder

results: install  ## rerun the README's Fashion-MNIST results (about 4 h on 2 CPU cores; one step: scripts/fashion_mnist_results.sh OUT arms_full)
	VENV=$(VENV) scripts/fashion_mnist_results.sh

slurm-start:  ## start the local Slurm cluster (two fake nodes on this host)
	$(SLURM) start

slurm-stop:  ## stop it
	$(SLURM) stop

clean:  ## remove logs and caches (keeps .venv)
	rm -rf logs multirun outputs wandb .pytest_cache .ruff_cache
