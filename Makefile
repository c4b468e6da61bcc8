# make train   trains the default config (creates .venv on first use)
# make test    runs the test suite (likewise)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/simple_rnn.yaml
# DATA: an aclImdb folder or aclImdb_v1.tar.gz; empty means Keras' own download.
DATA   ?=

.PHONY: install train test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,export,serve,tune,tensorboard,jax,torch]"
	touch $@

train: install
	$(BIN)/rnn train --config $(CONFIG) $(if $(DATA),--data $(DATA))

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info

# make bench   epoch time, accuracy and memory: book recipe vs rnn train (not part of make test)
# make bench BACKEND=tensorflow,jax,torch   rnn train on each Keras backend (BENCH_MODELS: configs)
BENCH_DATA ?= ../shared/data/aclImdb_v1_labeled.tar.gz
BACKEND ?=
BENCH_MODELS ?= $(if $(BACKEND),simple_rnn$(,)lstm$(,)best,simple_rnn$(,)lstm)
, := ,
bench: install
	$(BIN)/python benchmarks/bench.py --data $(BENCH_DATA) --models $(BENCH_MODELS) \
		$(if $(BACKEND),--backend $(BACKEND)) --json benchmarks/last.json
