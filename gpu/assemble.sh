#!/usr/bin/env bash
# Run HERE, where pip reaches a package index: puts into .gpu/ (ignored by git, carried to the device
# machine with carry=[".gpu"]) what the GPU machine needs and cannot fetch, since it reaches no package
# registry:
#   .gpu/wheels/  faiss-cpu and submitit for its Python 3.12 (cp312, manylinux x86_64). Everything else
#                 gps-bench imports on the paths the check uses is in its image (torch, torchvision,
#                 timm, numpy, pandas, scikit-learn, pyyaml, matplotlib, tqdm, pillow) and so are these
#                 wheels' own needs (numpy, packaging, cloudpickle, typing-extensions); wandb and optuna
#                 are imported only by W&B logging (off in the check) and `gpsbench tune`.
#   .gpu/data/    the CIFAR-10 JPEG archive, from ../shared/data (CIFAR_ARCHIVE=... to use another)
#   .gpu/MANIFEST.txt  every file with its size, and the size of all that travels (limit 64 MiB)
# then prints the device call that runs gpu/check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE=${CIFAR_ARCHIVE:-../shared/data/cifar10-jpeg.tar.gz}
WHEELS=${GPU_WHEELS:-"faiss-cpu==1.15.1 submitit==1.5.4"}
PYTHON=${PYTHON:-python3}
LIMIT_MIB=64

if [ ! -f "$ARCHIVE" ]; then
    echo "gpu/assemble.sh: no CIFAR-10 archive at $ARCHIVE (see ../shared/data/README.md, or set CIFAR_ARCHIVE=/path/to/cifar10-jpeg.tar.gz)" >&2
    exit 1
fi

mkdir -p .gpu/data
rm -rf .gpu/wheels.new && mkdir .gpu/wheels.new
for spec in $WHEELS; do
    # the platform tags of the device machine's Python (/work/.library/device/README.md, Notes)
    if ! "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .gpu/wheels.new "$spec"; then
        echo "gpu/assemble.sh: pip found no cp312 manylinux x86_64 wheel of $spec" >&2
        exit 1
    fi
done
rm -rf .gpu/wheels && mv .gpu/wheels.new .gpu/wheels  # one version of each: two would stop the install there
cmp -s "$ARCHIVE" .gpu/data/cifar10-jpeg.tar.gz || cp "$ARCHIVE" .gpu/data/cifar10-jpeg.tar.gz

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
tree_bytes=$(git ls-files -z -co --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
gpu_bytes=$(du -sb .gpu | cut -f1)
total=$((tree_bytes + gpu_bytes))
{
    echo "# .gpu: what gpu/check.sh needs on a GPU machine that cannot fetch it (written by gpu/assemble.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ))"
    for f in .gpu/wheels/*.whl .gpu/data/*; do
        echo "$(du -b "$f" | cut -f1) $f"
        case $f in *.whl)
            needs=$(unzip -p "$f" '*.dist-info/METADATA' | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==' | tr '\n' ' ')
            echo "    needs: ${needs:-nothing} (in the device image)";;
        esac
    done
    echo "sha256 $(sha256sum .gpu/data/cifar10-jpeg.tar.gz | cut -d' ' -f1) .gpu/data/cifar10-jpeg.tar.gz"
    echo "travels: working tree $(mib "$tree_bytes") + .gpu $(mib "$gpu_bytes") = $(mib "$total") (limit $LIMIT_MIB MiB)"
} > .gpu/MANIFEST.txt
cat .gpu/MANIFEST.txt
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
    echo "gpu/assemble.sh: $(mib "$total") would travel, over the device call's $LIMIT_MIB MiB" >&2
    exit 1
fi
cat <<'EOF'

On a machine with a GPU (from this checkout, where `git status` shows .gpu/ ignored), run in ONE device call:
    run(command="bash gpu/check.sh --device cuda", carry=[".gpu"], timeout_s=600)
or by hand on any GPU box:  bash gpu/check.sh --device cuda    (results in $OUT, default results/gpu-check/out)
EOF
