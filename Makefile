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

# The main job: the scikit-image astronaut (shipped with a dependency) talks, animated by
# the classic engine: no download, no ../shared, no network.
run: install
	$(BIN)/portrait-animate animate -s sample:astronaut -d preset:talk -o animations \
		--engine classic

lint: install
	$(BIN)/ruff check src tests bench

test: lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/neural_cpu.py
	$(BIN)/python bench/classic_speed.py
	$(BIN)/python bench/reenact.py
	$(BIN)/python bench/memory.py
