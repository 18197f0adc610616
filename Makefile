# Every target that needs the virtual environment depends on it, so a fresh clone needs no set-up step.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the JPEG CIFAR-10 archive beside the repository, where this project's machines keep it
CIFAR_ARCHIVE ?= $(wildcard ../shared/data/cifar10-jpeg.tar.gz)
# make sweep DATASET=cifar10 EXECUTOR=slurm PROFILE=slurm/profiles/mycluster.yaml SWEEP_ARGS="--dry-run"
DATASET ?= digits
EXECUTOR ?= local
PROFILE ?=
SWEEP_ARGS ?=
PERF_ARGS ?= --quick $(if $(CIFAR_ARCHIVE),--data-path $(CIFAR_ARCHIVE),--dataset synthetic --image-size 32)

.PHONY: install lint test test-fast perf perf-gpu gpu-check gpu-check-dry gpu-bundle sweep status table clean

$(BIN)/gpsbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
	touch $@

install: $(BIN)/gpsbench

# ruff (lint and format, settings in pyproject.toml), mypy, and the layer contract (pyproject.toml, import-linter:
# imports run downward, no cycle; tools/layers.py prints the layers and fails on a function over 60 lines
# without a `# long:` reason); .ci/run runs it before the tests
lint: install
	$(BIN)/ruff check benchmark tests gpu tools
	$(BIN)/ruff format --check benchmark tests gpu tools
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/python tools/layers.py --check-sizes

test: install
	$(BIN)/python -m pytest -q

# the loop of a change: every test that needs none of the markers of pyproject.toml (CONTRIBUTING.md#tests)
FAST_MARKERS := not slow and not real_data and not slurm and not wheel and not compile
test-fast: install
	$(BIN)/python -m pytest -q -m "$(FAST_MARKERS)"

perf: install
	$(BIN)/gpsbench perf $(PERF_ARGS)

# On a GPU machine: the GPU figures (16 DataLoader workers, torch.compile, batch 512 per view as in
# issue 7's H200 figures), then the 200-epoch CIFAR-10 SimCLR run whose train_seconds + eval_seconds
# (result.json) is the 7-minute target
GPU_BATCH ?= 512
perf-gpu: install
	$(BIN)/gpsbench perf --device cuda --workers 16 --batch-size $(GPU_BATCH) --set compile=true \
		$(if $(CIFAR_ARCHIVE),--data-path $(CIFAR_ARCHIVE))
	$(BIN)/gpsbench train --device cuda --dataset cifar10 $(if $(CIFAR_ARCHIVE),--data-path $(CIFAR_ARCHIVE)) \
		--method simclr --aug strong --epochs 200 --batch-size $(GPU_BATCH) --set compile=true \
		--out results/perf/cifar10-simclr-200ep

# The GPU check (docs/gpu-check.md): perf with its bf16-vs-fp32 check, then the paper's CIFAR-10 claim
# (sweeps/gpu-check.yaml) within a time budget. `make gpu-check` on a CUDA machine (results in
# results/gpu-check/out); `make gpu-check-dry`, the same check on the CPU at small sizes (results/gpu-check/dry);
# `make gpu-bundle` gathers into GPU_BUNDLE the wheels, data and code that a GPU node without internet needs
# (run it where pip reaches a package index). GPU_CHECK_ARGS="--budget 30m" and GPU_BUNDLE_ARGS="--python-version
# 3.12" pass options on (bash gpu/check.sh --help lists them)
GPU_CHECK_ARGS ?=
GPU_BUNDLE ?= results/gpu-bundle
GPU_BUNDLE_ARGS ?=
GPU_CHECK_DATA = $(if $(CIFAR_ARCHIVE),--data-path $(CIFAR_ARCHIVE))
gpu-check: install
	bash gpu/check.sh --device cuda --out results/gpu-check/out $(GPU_CHECK_DATA) $(GPU_CHECK_ARGS)

gpu-check-dry: install
	bash gpu/check.sh --device cpu --out results/gpu-check/dry $(GPU_CHECK_DATA) $(GPU_CHECK_ARGS)

gpu-bundle: install
	bash gpu/check.sh --bundle $(GPU_BUNDLE) $(GPU_CHECK_DATA) $(GPU_BUNDLE_ARGS)

sweep: install
	$(BIN)/gpsbench sweep sweeps/$(DATASET).yaml --executor $(EXECUTOR) $(if $(PROFILE),--profile $(PROFILE)) $(SWEEP_ARGS)

status: install
	$(BIN)/gpsbench status results/$(DATASET)

# prints the Markdown table; writes table-<metric>.md/.tex/.csv and the PNG plots into results/$(DATASET)/
TABLE_ARGS ?= --compare paper
table: install
	$(BIN)/gpsbench table results/$(DATASET) --save $(TABLE_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
