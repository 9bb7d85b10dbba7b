# Set-up is two commands: `make run` and `make test`. Both create .venv/ when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The main job. Until the classic engine lands it runs every neural stage on the
# scikit-image astronaut with synthetic weights (generated once into ~/.cache).
run: install
	$(BIN)/portrait-animate debug-stages --synthetic_weights \
		-s sample:astronaut -d sample:astronaut \
		--out animations/astronaut_stages.npz \
		--save_image animations/astronaut_neural_synthetic.png

lint: install
	$(BIN)/ruff check src tests bench

test: lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/neural_cpu.py
