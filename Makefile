# Two commands on a fresh clone: `make demo`, then `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(abspath ../shared/datasets)
export LLP_JAX_DATA_DIR ?= $(DATA_DIR)

.PHONY: install install-dev demo test test-full lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/python scripts/train.py

test: install-dev
	$(BIN)/python -m pytest

test-full: install-dev
	$(BIN)/python -m pytest -m "not gpu"

lint: install-dev
	$(BIN)/ruff check llp_jax scripts tests
	$(BIN)/ruff format --check llp_jax scripts tests

clean:
	rm -rf $(VENV) outputs multirun
