# setretrieval: `make demo` runs the main job, `make test` the test suite.
# Both create the virtual environment in $(VENV) and install the project on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo

.PHONY: demo test install clean-demo serve browser-deps

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Synthetic data -> shards -> train CST -> evaluate on test -> print the table.
demo: $(VENV)/.installed
	$(BIN)/python -m tfrecords_builder --flagfile=experiments/build/synthetic.flags \
	    --output_dir=$(DEMO_DIR)/synthetic --overwrite
	$(BIN)/python train_main.py --flagfile=experiments/synthetic/cst.flags \
	    --data_dir=$(DEMO_DIR)/synthetic --model_dir=$(DEMO_DIR)/cst --verbose=2
	$(BIN)/python eval_main.py --flagfile=experiments/synthetic/cst.flags \
	    --data_dir=$(DEMO_DIR)/synthetic --model_dir=$(DEMO_DIR)/cst --split=test

# Query service on the demo model (runs `make demo` first if it has not run): builds the
# index once, then serves on 127.0.0.1:$(PORT) until Ctrl-C.
PORT ?= 8000
BACKEND ?= faiss_hnsw
SERVE_FLAGS = --flagfile=experiments/serve/demo.flags --data_dir=$(DEMO_DIR)/synthetic \
    --model_dir=$(DEMO_DIR)/cst --backend=$(BACKEND)

$(DEMO_DIR)/cst/best.weights.h5:
	$(MAKE) demo

$(DEMO_DIR)/cst/index/$(BACKEND)/index_manifest.json: $(DEMO_DIR)/cst/best.weights.h5
	$(BIN)/python index_main.py $(SERVE_FLAGS) --index_overwrite

serve: $(VENV)/.installed $(DEMO_DIR)/cst/index/$(BACKEND)/index_manifest.json
	$(BIN)/python serve_main.py $(SERVE_FLAGS) --port=$(PORT)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# Headless Chromium and its driver for tests/search/browser_test.py (Debian packages; needs
# root). Does nothing when both are installed; without them that test is skipped.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends chromium chromium-driver; fi

clean-demo:
	rm -rf $(DEMO_DIR)
