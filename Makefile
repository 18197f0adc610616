# Every target that needs the virtual environment depends on it, so a fresh clone needs no set-up step.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the JPEG CIFAR-10 archive beside the repository, where this project's machines keep it
CIFAR_ARCHIVE ?= $(wildcard ../shared/data/cifar10-jpeg.tar.gz)
PERF_ARGS ?= --quick $(if $(CIFAR_ARCHIVE),--data-path $(CIFAR_ARCHIVE),--dataset synthetic --image-size 32)

.PHONY: install test test-fast perf clean

$(BIN)/gpsbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
	touch $@

install: $(BIN)/gpsbench

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

perf: install
	$(BIN)/gpsbench perf $(PERF_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
