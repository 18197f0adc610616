"""Live progress: one line per epoch in every run's log, a step bar that adds no host sync, and the
set-up work (a prior's embedding, an autoencoder's training, a neighbour search) reporting how far it got."""

from __future__ import annotations

import json
import re

import pytest
import torch

from benchmark import progress as progress_module
from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.neighbors import build_table
from benchmark.priors import build_prior, prior_embeddings
from benchmark.progress import clock, epoch_line, progress
from benchmark.syncs import record_host_syncs, summarize
from benchmark.train import train_run
from tests.conftest import small_method_args

EPOCH_LINE = re.compile(
    r"^run (?P<run>[0-9a-f]{12}) epoch (?P<epoch>\d+)/(?P<epochs>\d+) loss (?P<loss>\d+\.\d{4}) "
    r"lr (?P<lr>[0-9.e+-]+) (?P<speed>[\d,]+) img/s( val_knn (?P<knn>[01]\.\d{4}))? eta (?P<eta>\d+:\d\d:\d\d)$"
)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"))


def config(**values) -> RunConfig:
    heads = small_method_args("simclr", 128, proj_output_dim=32)
    return RunConfig.from_dict({"dataset": "digits", "batch_size": 128, "method_args": heads, **values})


def test_every_epoch_prints_one_line_with_its_numbers(tmp_path, digits, capsys, one_thread):
    """Not a terminal (capsys), as in a SLURM log: the line is there all the same, with the numbers
    metrics.jsonl holds for that epoch."""
    cfg = config(epochs=3, eval_every=2)
    train_run(cfg, tmp_path / "run", data=digits)
    err = capsys.readouterr().err
    lines = [m for m in map(EPOCH_LINE.match, err.splitlines()) if m]
    assert [(m["run"], m["epoch"], m["epochs"]) for m in lines] == [(cfg.run_id, str(e), "3") for e in (1, 2, 3)], err
    logged = [line for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]

    for match, metrics in zip(lines, map(json.loads, logged)):
        assert float(match["loss"]) == pytest.approx(metrics["loss"], abs=5e-5)
        assert float(match["lr"]) == pytest.approx(metrics["lr"], rel=1e-3)
        assert int(match["speed"].replace(",", "")) == round(metrics["images_per_s"])
        assert (match["knn"] is not None) == (metrics["epoch"] == 2)  # eval_every 2: epoch 2 only
    assert lines[-1]["eta"] == "0:00:00" and "\x1b" not in err and "step/s" not in err  # no bar off a terminal


def test_epoch_line_format():
    metrics = {"epoch": 12, "loss": 4.12341, "lr": 0.3, "images_per_s": 1234.4}
    assert epoch_line("1a2b3c4d5e6f", metrics, 200, 2470.2) == (
        "run 1a2b3c4d5e6f epoch 12/200 loss 4.1234 lr 0.3 1,234 img/s eta 0:41:10"
    )
    assert clock(3 * 3600 + 59.6) == "3:01:00"


def test_step_bar_counts_steps_and_adds_no_host_sync(tmp_path, digits, capsys, monkeypatch, one_thread):
    """The bar forced on (as on a terminal) over a whole run's loop: every host sync of the loop comes
    at most once per epoch (the loss read at its end), none per step, and none from the bar."""
    monkeypatch.setattr(progress_module, "interactive", lambda stream=None: True)
    cfg = config(epochs=2, progress=True)
    steps = len(digits.pretrain) // cfg.batch_size
    assert steps > cfg.epochs  # a per-step sync would occur more often than once per epoch

    def stop_before_evaluation(metrics: dict) -> None:
        if metrics["epoch"] == cfg.epochs:
            raise RuntimeError("stop: the loop is what is measured")

    with record_host_syncs() as found, pytest.raises(RuntimeError, match="the loop is what is measured"):
        train_run(cfg, tmp_path / "run", data=digits, epoch_callback=stop_before_evaluation)
    loop = {
        where: n
        for where, n in summarize(found).items()
        if any(part in where for part in ("benchmark/train.py", "benchmark/assembly.py", "progress"))
    }
    assert loop and all(n <= cfg.epochs for n in loop.values()), loop
    assert not any("benchmark/progress.py" in where for where in loop), loop
    err = capsys.readouterr().err
    assert f"{cfg.epochs * steps}/{cfg.epochs * steps}" in err and "step" in err, err[-2000:]
    assert "epoch=1/2" in err and "loss=" in err  # the first epoch's end (the second stops the run before)


def test_progress_prints_a_line_per_tenth_off_a_terminal(capsys):
    assert list(progress(range(25), "work", unit="items")) == list(range(25))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and lines[0].startswith("work: 3/25 items (12%) in ")
    assert lines[-1].startswith("work: 25/25 items (100%) in ") and lines[-1].endswith("eta 0:00:00")
    assert len(list(progress(range(3), "short"))) == 3 and len(capsys.readouterr().err.splitlines()) == 3


def test_progress_draws_a_bar_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "interactive", lambda stream=None: True)
    assert sum(progress(range(25), "work", unit="items")) == sum(range(25))
    err = capsys.readouterr().err
    assert "work" in err and "25/25" in err and "(100%)" not in err  # tqdm's bar, not the log lines


@pytest.mark.parametrize("kind", ["autoencoder", "vae"])
def test_autoencoder_prior_reports_its_training(kind, tmp_path, digits, capsys, one_thread):
    prior = build_prior(kind, {"epochs": 5, "size": 8, "latent_dim": 16})
    prior_embeddings(prior, kind, digits, tmp_path / "cache", torch.device("cpu"))
    err = capsys.readouterr().err.splitlines()
    what = {"autoencoder": "autoencoder", "vae": "VAE"}[kind]
    n = len(digits.pretrain)
    training = [line for line in err if line.startswith(f"prior {what}: training on {n:,} images: ")]
    assert [line.split(": ")[2].split(" in ")[0] for line in training] == [
        f"{e}/5 epochs ({20 * e}%)" for e in range(1, 6)
    ], err
    assert err[0] == training[0], err  # nothing before the work reports (a refused file errs in one line)
    assert err[-1].startswith(f"prior {kind}: {n:,} x 16 embedding in ")
    prior_embeddings(prior, kind, digits, tmp_path / "cache", torch.device("cpu"))  # from the cache: silent
    assert capsys.readouterr().err == ""


def test_ivf_search_reports_each_stage_and_the_join(capsys, one_thread):
    vectors = torch.randn(4000, 8, generator=torch.Generator().manual_seed(0))
    table = build_table(vectors, 5, "l2", "ivf", torch.device("cpu"))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "neighbours: ivf search of 4,000 x 8 embeddings (l2) for k=5"
    assert err[1].startswith("neighbours: IVF k-means of 4,000 points into 63 lists")
    assert err[2].startswith("neighbours: IVF nprobe ") and "1000 exact queries" in err[2]
    join = [line for line in err if line.startswith("neighbours: IVF join")]
    assert len(join) == 10 and " 63/63 lists (100%) " in join[-1]
    assert err[-1].startswith("neighbours: ivf table in ") and f"recall@5 {table.recall:.3f}" in err[-1]
