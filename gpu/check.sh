#!/usr/bin/env bash
# The GPU check (docs/gpu-check.md): `bash gpu/check.sh --device cuda [--out DIR]` on a CUDA machine,
# `--device cpu` for the same check at small sizes, `--bundle DIR` to gather what a node without
# internet needs, `--from-bundle DIR` on that node; `--help` lists every option.
# Runs the repository's gpu.check with the checkout's .venv Python if there is one, else $PYTHON or python3.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$repo/.venv/bin/python" ]; then PYTHON=$repo/.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m gpu.check "$@"
