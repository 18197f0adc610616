#!/usr/bin/env bash
# The GPU check (issue 19) in one call. On a GPU machine: `bash gpu/check.sh --device cuda`; here,
# the CPU dry run at small sizes: `bash gpu/check.sh --device cpu` (make gpu-check-dry).
# Installs the wheels that gpu/assemble.sh put in .gpu/wheels where this Python lacks faiss or
# submitit (a device machine reaches no package registry), puts the repository on PYTHONPATH, then
# runs gpu/check.py (every flag goes to it; --help lists them) with its output copied to
# $OUT/check.log. Results go to $OUT (default results/gpu-check/out).
set -uo pipefail
export GPU_CHECK_T0=${GPU_CHECK_T0:-$(date +%s.%N)}  # gpu/check.py's time budget counts from here
cd "$(dirname "$0")/.." || exit 2
export OUT=${OUT:-results/gpu-check/out}
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

main() {
    if ! "$PYTHON" -c 'import faiss, submitit' 2>/dev/null; then
        if ! ls .gpu/wheels/*.whl >/dev/null 2>&1; then
            echo "gpu/check.sh: $PYTHON lacks faiss or submitit and .gpu/wheels has no wheels: run gpu/assemble.sh (make gpu-check) on a machine with pip's registry first" >&2
            return 3
        fi
        local site=${GPU_CHECK_SITE:-/tmp/gpsbench-site} started=$SECONDS
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
            .gpu/wheels/*.whl || { echo "gpu/check.sh: installing .gpu/wheels into $site failed" >&2; return 3; }
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
        echo "[check.sh] installed $(ls .gpu/wheels | tr '\n' ' ')into $site in $((SECONDS - started)) s"
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    "$PYTHON" -u gpu/check.py run "$@"
}

main "$@" 2>&1 | tee "$OUT/check.log"
exit "${PIPESTATUS[0]}"
