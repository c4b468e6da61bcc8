# make train   installs the core alone into .venv (TensorFlow, Keras, click, PyYAML, tqdm, matplotlib), then trains
# make test    installs everything the tests use (extras, PyTorch's CPU build, Chromium), then runs them
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/simple_rnn.yaml
# DATA: an aclImdb folder or aclImdb_v1.tar.gz; empty means Keras' own download.
DATA   ?=
# The extras the tests use; PyTorch comes from tests/provision.sh, as its CPU build.
TEST_EXTRAS := dev,export,serve,tune,tensorboard,jax,baseline

.PHONY: install install-test train test bench clean

install: $(VENV)/.core

$(VENV)/.core: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@
	@echo "installed the core into $(VENV); to type rnn instead of $(BIN)/rnn:"
	@echo "    source $(BIN)/activate"

install-test: $(VENV)/.test

$(VENV)/.test: $(VENV)/.core tests/provision.sh
	$(BIN)/python -m pip install --quiet -e ".[$(TEST_EXTRAS)]"
	bash tests/provision.sh $(BIN)/python
	touch $@

train: install
	$(BIN)/rnn train --config $(CONFIG) $(if $(DATA),--data $(DATA))

test: install-test
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info

# make bench   epoch time, accuracy and memory: book recipe vs rnn train (not part of make test)
# make bench BACKEND=tensorflow,jax,torch   rnn train on each Keras backend (BENCH_MODELS: configs)
BENCH_DATA ?= ../shared/data/aclImdb_v1_labeled.tar.gz
BACKEND ?=
BENCH_MODELS ?= $(if $(BACKEND),simple_rnn$(,)lstm$(,)best,simple_rnn$(,)lstm)
, := ,
bench: install-test
	$(BIN)/python benchmarks/bench.py --data $(BENCH_DATA) --models $(BENCH_MODELS) \
		$(if $(BACKEND),--backend $(BACKEND)) --json benchmarks/last.json
