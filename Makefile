# Every target that needs the virtual environment depends on it, so a fresh clone needs no set-up step.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATASET ?= digits

.PHONY: install test test-fast perf clean

$(BIN)/gpsbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
	touch $@

install: $(BIN)/gpsbench

test: install
	WANDB_MODE=offline $(BIN)/python -m pytest -q

test-fast: install
	WANDB_MODE=offline $(BIN)/python -m pytest -q -m "not slow"

perf: install
	$(BIN)/gpsbench perf $(PERF_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
