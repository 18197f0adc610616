"""The bad-input corpus: every case runs the real `gpsbench` command line against a workspace holding a
finished run, and must end with a non-zero exit, exactly one line on stderr naming the bad value, no
traceback, and every file of the workspace byte-identical to before (a crafted pickle's marker file
included: it must never be created)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from benchmark.cli import main

SMALL = [
    "--dataset",
    "digits",
    "--batch-size",
    "128",
    "--set",
    "method_args.proj_hidden_dim=64",
    "--set",
    "method_args.proj_output_dim=16",
    "--set",
    "progress=false",
]


BOMB = (
    "["
    + ", ".join(["&a0 [x, x, x, x, x, x, x, x, x]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)])
    + "]"
)


def _read_export(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata()


class Crafted:
    """A pickle that would create a marker file when loaded with pickle (never with weights_only)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _png(size: int = 8, colour: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _tree(root: Path, bad_name: str, bad_bytes: bytes) -> Path:
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                (root / split / cls / f"{i}.png").write_bytes(_png(colour=40 * i + (cls == "b") * 100))
    (root / "train" / "a" / bad_name).write_bytes(bad_bytes)
    return root


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace: a finished run, a run with a truncated checkpoint, crafted and damaged files."""
    ws = tmp_path_factory.mktemp("ws")
    marker = ws / "MARKER"
    runs = ws / "results" / "runs"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(runs / "done"), "--data-dir", str(ws / "data")]) == 0
    shutil.copytree(runs / "done", runs / "torn")
    (runs / "torn" / "result.json").unlink()
    status = json.loads((runs / "torn" / "status.json").read_text())
    (runs / "torn" / "status.json").write_text(json.dumps({**status, "state": "pending"}))
    checkpoint = (runs / "torn" / "checkpoint.pt").read_bytes()
    (runs / "torn" / "checkpoint.pt").write_bytes(checkpoint[: len(checkpoint) // 2])
    edited = json.loads((runs / "done" / "config.json").read_text())
    (ws / "edited.json").write_text(json.dumps({**edited, "epochs": 3}))

    inputs = ws / "in"
    inputs.mkdir()
    (inputs / "bad.yaml").write_text("epochs: [1, 2\nmethod: simclr\n")
    (inputs / "list.yaml").write_text("- epochs\n- 3\n")
    (inputs / "typo.yaml").write_text("epoch: 3\n")
    (inputs / "garbage.pt").write_bytes(os.urandom(2048))
    (inputs / "garbage.safetensors").write_bytes(os.urandom(2048))
    torch.save({"features.0.weight": Crafted(marker)}, inputs / "crafted.pt")
    (inputs / "crafted-raw.pt").write_bytes(pickle.dumps(Crafted(marker), protocol=2))
    (inputs / "empty.tar.gz").write_bytes(b"")
    (inputs / "notatar.tar.gz").write_bytes(os.urandom(4096))
    with tarfile.open(inputs / "nothing.tar.gz", "w:gz"):
        pass
    (inputs / "afile").write_text("a file, not a folder\n")
    (inputs / "pathmnist.npz").write_bytes(os.urandom(512))
    (inputs / "profile.yaml").write_text("partition: [gpu\n")
    _tree(inputs / "truncated-image", "bad.png", _png()[:40])
    _tree(inputs / "text-image", "notes.jpg", b"these are notes, not a JPEG\n")
    crafted_run = ws / "crafted-run"
    crafted_run.mkdir()
    (crafted_run / "config.json").write_text((runs / "done" / "config.json").read_text())
    torch.save({"run_id": "x", "epoch": 1, "method": {"backbone.x": Crafted(marker)}}, crafted_run / "checkpoint.pt")

    # inputs that cost without bound: nine levels of nine aliases stand for 387,420,489 values
    (inputs / "bomb.yaml").write_text(f"epochs: {BOMB}\n")
    (inputs / "deep.yaml").write_text("epochs: " + "[" * 200 + "]" * 200 + "\n")
    (inputs / "large.yaml").write_text("epochs: 1\n" + "# padding\n" * 120_000)
    # an export whose header was edited: a key removed, a number that is not one
    assert main(["export", str(runs / "done"), "--out", str(inputs / "backbone.safetensors")]) == 0
    tensors, header = _read_export(inputs / "backbone.safetensors")
    safetensors.torch.save_file(
        tensors, inputs / "no-size.safetensors", {k: v for k, v in header.items() if k != "image_size"}
    )
    safetensors.torch.save_file(tensors, inputs / "bad-dim.safetensors", {**header, "feature_dim": "wide"})
    # folders that are not this run's: a finished run without or with a damaged status.json and another
    # config, a user's own files, a config.json that names another run beside a status.json of this one
    owned = ws / "owned"
    for name in ("nostatus", "badstatus", "otherconfig"):
        shutil.copytree(runs / "done", owned / name)
    (owned / "nostatus" / "status.json").unlink()
    (owned / "badstatus" / "status.json").write_text('{"state": "do')
    (owned / "otherconfig" / "config.json").write_text(json.dumps({**edited, "seed": 7}))
    (owned / "mine").mkdir()
    (owned / "mine" / "config.json").write_text('{"my": "own config"}\n')
    (owned / "mine" / "result.json").write_text('{"my": "own result"}\n')
    (owned / "mine" / "metrics.jsonl").write_text('{"epoch": 1, "note": "my own log"}\n')

    sweeps = ws / "sweeps"
    sweeps.mkdir()
    good = "grid: {seed: [0, 1]}\nfixed: {dataset: digits, epochs: 1}\n"
    for name, text in {
        "malformed": "grid: {seed: [0, 1}\n",
        "notmapping": "- seed\n",
        "typo": "gird: {seed: [0]}\n" + good,
        "emptyaxis": "grid: {seed: []}\n",
        "badvalue": "grid: {seed: [0]}\nfixed: {dataset: digits, epochs: many}\n",
        "noprior": "grid: {seed: [0], prior: ['run:method=simclr']}\nfixed: {dataset: digits}\n",
        "include": "include: [missing.yaml]\n" + good,
        "badinclude": "include: [malformed.yaml]\n" + good,
        "perval": good + "per: {seed: {7: {epochs: 2}}}\n",
        "bomb": f"grid: {{seed: [0]}}\nfixed: {{dataset: digits, epochs: {BOMB}}}\n",
        "hugeseed": f"grid: {{seed: [{2**70}]}}\nfixed: {{dataset: digits, epochs: 1}}\n",
        "good": good,
    }.items():
        (sweeps / f"{name}.yaml").write_text(f"name: {name}\n{text}")
    tune = "name: t\nfixed: {dataset: digits, method: simclr}\nspace: {lr: {type: float, low: 0.1, high: 1.0}}\n"
    (sweeps / "tune-test-objective.yaml").write_text(tune + "objective: linear_acc\n")
    (sweeps / "tune-bounds.yaml").write_text(tune.replace("low: 0.1, high: 1.0", "low: 1.0, high: 0.1"))
    (sweeps / "tune-malformed.yaml").write_text("name: t\nspace: {lr: {type: float\n")
    (sweeps / "tune-good.yaml").write_text(tune)
    (sweeps / "tune-sampler-seed.yaml").write_text(tune + f"sampler: {{name: tpe, seed: {2**40}}}\n")
    return ws


R = "results/runs"
CASES = [
    # train: unknown choices, keys, types, ranges
    ("unknown-dataset", ["train", "--dataset", "mnist"], "'mnist'"),
    ("unknown-method", ["train", "--method", "moco"], "'moco'"),
    ("unknown-aug", ["train", "--aug", "heavy"], "'heavy'"),
    ("unknown-backbone", ["train", "--backbone", "resnet-18"], "'resnet-18'"),
    ("unknown-device", ["train", "--device", "tpu"], "'tpu'"),
    ("unknown-sampling", ["train", "--prior", "pixel", "--k", "5", "--sampling", "nope"], "'nope'"),
    ("unknown-key", ["train", "--set", "temperature=0.1"], "'temperature'"),
    ("unknown-args-section", ["train", "--set", "foo.bar=1"], "'foo.bar'"),
    ("negative-epochs", ["train", "--epochs", "-5"], "-5"),
    ("negative-lr", ["train", "--lr", "-1"], "lr must be >= 0"),
    ("nan-lr", ["train", "--set", "lr=.nan"], "nan"),
    ("infinite-lr", ["train", "--set", "lr=inf"], "lr must be finite"),
    ("val-fraction-range", ["train", "--set", "val_fraction=1.5"], "1.5"),
    ("wrong-type", ["train", "--set", "epochs=many"], "'many'"),
    ("wrong-bool", ["train", "--set", "compile=maybe"], "'maybe'"),
    ("wrong-arg-type", ["train", "--set", "method_args.temperature=abc"], "'abc'"),
    ("negative-prior-arg", ["train", "--prior", "pixel", "--k", "5", "--set", "prior_args.pca_dim=-1"], "pca_dim"),
    ("set-without-equals", ["train", "--set", "epochs"], "'epochs'"),
    ("set-malformed-yaml", ["train", "--set", "method_args={temperature: [0.1,"], "[0.1,"),
    ("argparse-bad-int", ["train", "--epochs", "ten"], "'ten'"),
    ("argparse-unknown-flag", ["train", "--epocs", "3"], "--epocs"),
    ("argparse-resume-and-restart", ["train", "--resume", "--restart"], "--restart"),
    # train: config files
    ("config-malformed-yaml", ["train", "--config", "in/bad.yaml"], "bad.yaml"),
    ("config-not-a-mapping", ["train", "--config", "in/list.yaml"], "list.yaml"),
    ("config-missing", ["train", "--config", "in/none.yaml"], "none.yaml"),
    ("config-unknown-key", ["train", "--config", "in/typo.yaml"], "'epoch'"),
    (
        "config-edited-resume-on-done-run",
        ["train", "--config", "edited.json", "--resume", "--out", f"{R}/done"],
        "config changed",
    ),
    ("truncated-checkpoint-resume", ["train", *SMALL, "--epochs", "1", "--resume", "--out", f"{R}/torn"], "--restart"),
    # train: sizes found once the data is loaded
    ("refresh-plain-run", ["train", "--set", "refresh_every=5"], "refresh_every=5"),
    ("refresh-unknown-source", ["train", "--prior", "pixel", "--k", "5", "--set", "refresh_from=feats"], "'feats'"),
    ("k-larger-than-train", ["train", "--prior", "pixel", "--k", "5000"], "k=5000"),
    ("batch-larger-than-train", ["train", "--batch-size", "5000"], "5000"),
    # train: data
    ("imagefolder-missing", ["train", "--dataset", "imagefolder", "--data-path", "in/nowhere"], "nowhere"),
    (
        "imagefolder-truncated-image",
        ["train", "--dataset", "imagefolder", "--data-path", "in/truncated-image"],
        "bad.png",
    ),
    ("imagefolder-non-image", ["train", "--dataset", "imagefolder", "--data-path", "in/text-image"], "notes.jpg"),
    ("archive-empty", ["train", "--dataset", "imagefolder", "--data-path", "in/empty.tar.gz"], "empty.tar.gz"),
    ("archive-not-a-tar", ["train", "--dataset", "imagefolder", "--data-path", "in/notatar.tar.gz"], "notatar.tar.gz"),
    (
        "archive-without-images",
        ["train", "--dataset", "imagefolder", "--data-path", "in/nothing.tar.gz"],
        "nothing.tar.gz",
    ),
    ("cifar-archive-not-a-tar", ["data", "--dataset", "cifar10", "--data-path", "in/notatar.tar.gz"], "notatar.tar.gz"),
    ("medmnist-npz-damaged", ["data", "--dataset", "pathmnist", "--data-path", "in/pathmnist.npz"], "pathmnist.npz"),
    # train: files that are loaded
    ("weights-not-weights", ["train", "--set", "weights=in/garbage.pt"], "garbage.pt"),
    ("weights-crafted-pickle", ["train", "--set", "weights=in/crafted.pt"], "crafted.pt"),
    ("weights-crafted-raw-pickle", ["train", "--set", "weights=in/crafted-raw.pt"], "crafted-raw.pt"),
    ("weights-missing", ["train", "--set", "weights=in/none.pt"], "none.pt"),
    ("weights-bad-safetensors", ["train", "--set", "weights=in/garbage.safetensors"], "garbage.safetensors"),
    ("prior-run-crafted-checkpoint", ["train", "--prior", "run:crafted-run", "--k", "5"], "crafted-run"),
    ("prior-run-glob", ["train", "--prior", "run:*", "--k", "5"], "run:*"),
    ("prior-run-missing", ["train", "--prior", "run:0123456789ab", "--k", "5"], "0123456789ab"),
    # train: where results go
    ("out-under-a-file", ["train", *SMALL, "--epochs", "1", "--out", "in/afile/run"], "afile"),
    # train: folders that hold another run or files nothing says are this run's
    ("out-finished-run-status-missing", ["train", *SMALL, "--epochs", "2", "--out", "owned/nostatus"], "holds run"),
    ("out-finished-run-status-damaged", ["train", *SMALL, "--epochs", "2", "--out", "owned/badstatus"], "holds run"),
    ("out-config-names-another-run", ["train", *SMALL, "--epochs", "1", "--out", "owned/otherconfig"], "holds run"),
    ("out-users-own-folder", ["train", *SMALL, "--epochs", "1", "--out", "owned/mine"], "no config of this suite"),
    # input that would cost without bound, and numbers beyond what is accepted
    ("config-alias-bomb", ["train", "--config", "in/bomb.yaml"], "bomb.yaml"),
    ("config-nested-too-deep", ["train", "--config", "in/deep.yaml"], "deep.yaml"),
    ("config-too-large", ["train", "--config", "in/large.yaml"], "large.yaml"),
    ("set-alias-bomb", ["train", "--set", f"epochs={BOMB}"], "expands to more than"),
    ("set-too-long", ["train", "--set", "epochs=" + "9" * (2 << 20)], "characters"),
    ("seed-beyond-64-bits", ["train", "--seed", str(2**70)], str(2**70)),
    ("seed-beyond-64-bits-set", ["train", "--set", f"seed=-{2**64}"], str(2**64)),
    ("subset-above-the-data", ["train", *SMALL, "--epochs", "1", "--subset", "100000"], "100000"),
    (
        "export-header-missing-key",
        ["train", "--prior", "timm:resnet18", "--k", "5", "--set", "prior_args.weights=in/no-size.safetensors"],
        "image_size",
    ),
    (
        "export-header-wrong-type",
        ["train", "--prior", "timm:resnet18", "--k", "5", "--set", "prior_args.weights=in/bad-dim.safetensors"],
        "feature_dim",
    ),
    # prior, data
    ("prior-k-larger-than-train", ["prior", "--prior", "pixel", "--k", "5000"], "k=5000"),
    ("prior-plain-ssl", ["prior", "--dataset", "digits"], "plain SSL"),
    ("data-unknown-dataset", ["data", "--dataset", "cifar11"], "'cifar11'"),
    # sweep files and flags
    ("sweep-missing", ["sweep", "sweeps/none.yaml"], "none.yaml"),
    ("sweep-malformed-yaml", ["sweep", "sweeps/malformed.yaml"], "malformed.yaml"),
    ("sweep-not-a-mapping", ["sweep", "sweeps/notmapping.yaml"], "notmapping.yaml"),
    ("sweep-unknown-key", ["sweep", "sweeps/typo.yaml"], "'gird'"),
    ("sweep-empty-axis", ["sweep", "sweeps/emptyaxis.yaml"], "grid.seed"),
    ("sweep-wrong-type", ["sweep", "sweeps/badvalue.yaml"], "'many'"),
    ("sweep-prior-names-no-cell", ["sweep", "sweeps/noprior.yaml"], "run:method=simclr"),
    ("sweep-include-missing", ["sweep", "sweeps/include.yaml"], "missing.yaml"),
    ("sweep-include-malformed", ["sweep", "sweeps/badinclude.yaml"], "malformed.yaml"),
    ("sweep-per-value-off-axis", ["sweep", "sweeps/perval.yaml"], "7"),
    ("sweep-max-parallel-zero", ["sweep", "sweeps/good.yaml", "--max-parallel", "0"], "--max-parallel"),
    ("sweep-set-wrong-type", ["sweep", "sweeps/good.yaml", "--set", "epochs=x"], "'x'"),
    ("sweep-unknown-executor", ["sweep", "sweeps/good.yaml", "--executor", "cloud"], "'cloud'"),
    ("sweep-unknown-profile", ["sweep", "sweeps/good.yaml", "--executor", "slurm", "--profile", "nowhere"], "nowhere"),
    (
        "sweep-malformed-profile",
        ["sweep", "sweeps/good.yaml", "--executor", "slurm", "--profile", "in/profile.yaml"],
        "profile.yaml",
    ),
    ("sweep-alias-bomb", ["sweep", "sweeps/bomb.yaml"], "bomb.yaml"),
    ("sweep-seed-beyond-64-bits", ["sweep", "sweeps/hugeseed.yaml"], str(2**70)),
    ("sweep-results-under-a-file", ["sweep", "sweeps/good.yaml", "--results-dir", "in/afile"], "afile"),
    # tune
    ("tune-missing", ["tune", "sweeps/none.yaml"], "none.yaml"),
    ("tune-test-objective", ["tune", "sweeps/tune-test-objective.yaml"], "'linear_acc'"),
    ("tune-bounds", ["tune", "sweeps/tune-bounds.yaml"], "low must be below high"),
    ("tune-malformed-yaml", ["tune", "sweeps/tune-malformed.yaml"], "tune-malformed.yaml"),
    ("tune-sampler-seed-beyond-numpy", ["tune", "sweeps/tune-sampler-seed.yaml"], "sampler.seed"),
    ("tune-workers-zero", ["tune", "sweeps/tune-good.yaml", "--workers", "0"], "--workers"),
    # status, table
    ("status-missing-folder", ["status", "results/nowhere"], "nowhere"),
    ("table-missing-folder", ["table", "results/nowhere"], "nowhere"),
    ("table-unknown-axis", ["table", R, "--rows", "bogus"], "'bogus'"),
    ("table-unknown-metric", ["table", R, "--metric", "bogus"], "'bogus'"),
    ("table-nothing-done", ["table", "in"], "no done runs"),
]


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def test_the_corpus_is_large_and_its_names_unique():
    assert len(CASES) >= 40 and len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("argv, named", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_non_zero_and_writes_nothing(ws, argv, named, capfd, monkeypatch):
    monkeypatch.chdir(ws)
    monkeypatch.setenv("GPSBENCH_RESULTS", str(ws / "results"))
    monkeypatch.setenv("GPSBENCH_DATA", str(ws / "data"))
    before = snapshot(ws)
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse
        code = exit.code
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert code not in (0, None), (code, out, err)
    assert len(lines) == 1 and "Traceback" not in out + err, err
    assert named in lines[0], (named, lines[0])
    assert snapshot(ws) == before
    assert not (ws / "MARKER").exists()
