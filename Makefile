# Two commands on a fresh clone: `make demo`, then `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(abspath ../shared/datasets)
export LLP_JAX_DATA_DIR ?= $(DATA_DIR)

.PHONY: install install-dev demo test test-full lint results results-fashion clean

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

# The bag-size table of the README: every method on adult and bank marketing, bag sizes 8 to 2048,
# three seeds. LLP-BP in two variants of its settings (the default, warm-started by EasyLLP, and the
# paper's plain rounds), resolved per run on the validation bags by scripts/report.py.
# A fresh folder per invocation: a run never writes into a folder that holds another run's results.
RESULTS_STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
RESULTS ?= results/$(RESULTS_STAMP)
SEEDS := $(BIN)/python scripts/train.py -m seed=0,1,2 train.progress=false
SWEEP := $(SEEDS) bagging.bag_size=8,32,128,512,2048
results: install
	$(SWEEP) dataset=adult,bank_marketing method=supervised,dllp,easyllp hydra.sweep.dir=$(RESULTS)/baselines
	$(SWEEP) dataset=adult,bank_marketing method=llp_bp hydra.sweep.dir=$(RESULTS)/llp_bp_default
	$(SWEEP) dataset=adult,bank_marketing method=llp_bp schedule=plain bp.lambda_s=10 \
		hydra.sweep.dir=$(RESULTS)/llp_bp_plain
	$(BIN)/python scripts/report.py $(RESULTS)/baselines $(RESULTS)/llp_bp_default $(RESULTS)/llp_bp_plain \
		--out benchmarks/bag_sizes

# The same table for fashion-MNIST, bag sizes 32 to 512, with a CNN and an epoch budget sized for a CPU
# (about 1.5 hours on 2 cores); LLP-BP in its default settings only.
FASHION := dataset=fashion_mnist model=cnn model.channels=[16,32] train.epochs=15 train.patience=5
results-fashion: install
	$(SEEDS) bagging.bag_size=32,128,512 $(FASHION) method=supervised,dllp,easyllp,llp_bp \
		hydra.sweep.dir=$(RESULTS)/fashion
	$(BIN)/python scripts/report.py $(RESULTS)/fashion --out benchmarks/fashion

clean:
	rm -rf $(VENV) outputs multirun
