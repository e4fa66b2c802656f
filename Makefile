# Two commands on a fresh clone: `make demo`, then `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(abspath ../shared/datasets)
export LLP_JAX_DATA_DIR ?= $(DATA_DIR)

.PHONY: install install-dev demo test test-full lint results results-fashion results-fashion10 clean

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
	$(BIN)/ruff check llp_jax scripts tests benchmarks
	$(BIN)/ruff format --check llp_jax scripts tests benchmarks

# The tables of the README: every method on adult and bank marketing at bag sizes 8 to 2048, three seeds,
# and five at 512 and 2048 where every method's spread is large (benchmarks/bag_sizes); on both thinned to
# 2% positives with random bags of 500 to 1,500 rows (benchmarks/thinned); on adult's feature bags, two
# column pairs (benchmarks/feature; bank marketing and fashion-MNIST ship no categorical columns). LLP-BP
# in its default settings only (schedule=auto, which logs each candidate); benchmarks/selection_study.py
# reads the same folders.
# A fresh folder per invocation: a run never writes into a folder that holds another run's results.
RESULTS_STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
RESULTS ?= results/$(RESULTS_STAMP)
SEEDS := $(BIN)/python scripts/train.py -m seed=0,1,2 train.progress=false
METHODS := method=supervised,dllp,easyllp,countloss,llp_bp
THINNED := dataset.positive_rate=0.02 bagging.size_range=[500,1500]
FEATURE_PAIRS := 'bagging.columns=[education,occupation],[marital_status,occupation]'
results: install
	$(SEEDS) dataset=adult,bank_marketing $(THINNED) $(METHODS) hydra.sweep.dir=$(RESULTS)/thinned
	$(SEEDS) dataset=adult,bank_marketing bagging.bag_size=8,32,128,512,2048 $(METHODS) \
		hydra.sweep.dir=$(RESULTS)/bag_sizes
	$(BIN)/python scripts/train.py -m seed=3,4 train.progress=false dataset=adult,bank_marketing \
		bagging.bag_size=512,2048 $(METHODS) hydra.sweep.dir=$(RESULTS)/bag_sizes_more
	$(SEEDS) dataset=adult bagging=feature $(FEATURE_PAIRS) $(METHODS) hydra.sweep.dir=$(RESULTS)/feature
	$(BIN)/python scripts/report.py $(RESULTS)/bag_sizes $(RESULTS)/bag_sizes_more --out benchmarks/bag_sizes
	$(BIN)/python scripts/report.py $(RESULTS)/feature --by bagging.columns --out benchmarks/feature
	$(BIN)/python scripts/report.py $(RESULTS)/thinned --by dataset.positive_rate --out benchmarks/thinned
	$(BIN)/python benchmarks/selection_study.py $(RESULTS)/bag_sizes $(RESULTS)/thinned --out benchmarks/selection
	$(BIN)/python benchmarks/count_evidence.py $(RESULTS)/bag_sizes $(RESULTS)/thinned --out benchmarks/count_evidence

# The same table for fashion-MNIST, bag sizes 32 to 512 (five seeds at 512, where EasyLLP's spread is
# large), with a CNN and an epoch budget sized for a CPU (about 1.5 hours on 2 cores); LLP-BP in its
# default settings only.
FASHION := dataset=fashion_mnist model=cnn model.channels=[16,32] train.epochs=15 train.patience=5
results-fashion: install
	$(SEEDS) bagging.bag_size=32,128,512 $(FASHION) method=supervised,dllp,easyllp,llp_bp \
		hydra.sweep.dir=$(RESULTS)/fashion
	$(BIN)/python scripts/train.py -m seed=3,4 train.progress=false bagging.bag_size=512 $(FASHION) \
		method=supervised,dllp,easyllp,llp_bp hydra.sweep.dir=$(RESULTS)/fashion_more
	$(BIN)/python scripts/report.py $(RESULTS)/fashion $(RESULTS)/fashion_more --out benchmarks/fashion

# Fashion-MNIST with all 10 classes (dataset.classes=all; issue 26): the methods that take K classes, bags of
# 32 to 512, three seeds and five at 512 (where the bag-level methods' spread is large), the budget of
# results-fashion; test accuracy and macro AUC (about 85 minutes on 2 cores).
FASHION10 := $(FASHION) dataset.classes=all
results-fashion10: install
	$(SEEDS) bagging.bag_size=32,128,512 $(FASHION10) method=supervised,dllp,countloss,llp_bp \
		hydra.sweep.dir=$(RESULTS)/fashion10
	$(BIN)/python scripts/train.py -m seed=3,4 train.progress=false bagging.bag_size=512 $(FASHION10) \
		method=supervised,dllp,countloss,llp_bp hydra.sweep.dir=$(RESULTS)/fashion10_more
	$(BIN)/python scripts/report.py $(RESULTS)/fashion10 $(RESULTS)/fashion10_more --metric test_accuracy \
		--out benchmarks/fashion10_accuracy
	$(BIN)/python scripts/report.py $(RESULTS)/fashion10 $(RESULTS)/fashion10_more --metric test_macro_auc \
		--out benchmarks/fashion10_macro_auc

clean:
	rm -rf $(VENV) outputs multirun
