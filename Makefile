# Set-up is two commands: `make run` and `make test`. Both create .venv/ when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench app

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test,live,ray]'
	touch $(STAMP)

install: $(STAMP)

# The main job: the scikit-image astronaut (shipped with a dependency) talks, animated by
# the classic engine: no download, no ../shared, no network.
run: install
	$(BIN)/portrait-animate animate -s sample:astronaut -d preset:talk -o animations \
		--engine classic

# The browser tests drive Debian's chromium (Playwright's own browser download does not work
# here); installing it needs root, as in CI. Without it those tests skip and say why.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	-DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
		>/dev/null 2>&1 || \
		(apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium)

app: install
	$(BIN)/portrait-animate app

lint: install
	$(BIN)/ruff check src tests bench

# One pytest worker per core (at most 4), each taking whole test files so that a file's
# server, browser and networks start once: on CI's 2 cores about 0.7 of the time of one.
test: lint $(CHROMIUM)
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

bench: install
	$(BIN)/python bench/neural_cpu.py
	$(BIN)/python bench/classic_speed.py
	$(BIN)/python bench/reenact.py
	$(BIN)/python bench/memory.py
