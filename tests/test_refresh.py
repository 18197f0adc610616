"""Refreshing the neighbour table from the model being trained (benchmark/refresh.py): the config's
checks and identity, the embedding (eval mode, BatchNorm untouched, backbone or projector), the table's
agreement and overlap, the swap between epochs, exact resume after a refresh, and one table on every
rank of a distributed run."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from benchmark.assembly import build_parts
from benchmark.backbones import build_backbone
from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.evaluate import extract_features
from benchmark.methods import METHODS, SOURCES, MethodContext, build_method
from benchmark.neighbors import build_table, prior_nn_agreement
from benchmark.refresh import embed_for_refresh, table_overlap
from benchmark.rundir import RunDir
from benchmark.train import RunInterrupted, train_run
from tests.conftest import small_method_args

GPS = {"dataset": "digits", "prior": "pixel", "k": 5, "batch_size": 128, "progress": False}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def few_digits(tmp_path_factory):
    """600 images (4 steps of 128 an epoch): for the tests that train three runs."""
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"), subset=600)


def config(**values) -> RunConfig:
    method = values.get("method", "simclr")
    heads = small_method_args(method, 256, proj_output_dim=64, queue_size=4096)
    return RunConfig.from_dict({**GPS, "method": method, "method_args": heads, **values})


# ------------------------------------------------------------------------------------ the config
@pytest.mark.parametrize(
    "values, named",
    [
        ({"refresh_every": -1}, "refresh_every must be >= 0"),
        ({"prior": "none", "k": 0, "refresh_every": 2}, "plain SSL"),
        ({"k": 0, "refresh_every": 2}, "plain SSL"),
        ({"prior": "oracle", "k": 0, "refresh_every": 2}, "'oracle' draws its positives without one"),
        ({"epochs": 5, "refresh_every": 5}, "valid: 0 or 1 to 4"),
        ({"refresh_every": 2, "refresh_from": "head"}, "unknown refresh_from 'head'"),
    ],
)
def test_bad_refresh_settings_are_one_clear_error(values, named):
    with pytest.raises(ConfigError, match=named) as err:
        RunConfig.from_dict({**GPS, "epochs": 10, **values})
    if "refresh_from" in values:
        assert "backbone" in str(err.value) and "projector" in str(err.value)  # the valid choices


def test_refresh_enters_run_id_only_when_it_refreshes():
    base = RunConfig.from_dict({**GPS, "epochs": 10})
    assert RunConfig.from_dict({**GPS, "epochs": 10, "refresh_from": "projector"}).run_id == base.run_id
    every5 = RunConfig.from_dict({**GPS, "epochs": 10, "refresh_every": 5})
    projector = RunConfig.from_dict({**GPS, "epochs": 10, "refresh_every": 5, "refresh_from": "projector"})
    assert len({base.run_id, every5.run_id, projector.run_id}) == 3
    assert "refresh_every" not in base.resolved() and every5.resolved()["refresh_every"] == 5


def test_every_method_has_the_projector_a_refresh_embeds_with():
    assert SOURCES.names() == ["backbone", "projector"]
    x = torch.randn(4, 3, 8, 8)
    for name in METHODS.names():
        backbone, feat_dim = build_backbone("small", 8, False, None)
        heads = small_method_args(name, 32, proj_output_dim=16, queue_size=64)
        method = build_method(name, backbone, feat_dim, heads, MethodContext(num_train=64, epochs=1)).eval()
        assert SOURCES.get("projector")(method, x).shape == (4, 16), name
        assert SOURCES.get("backbone")(method, x).shape == (4, feat_dim), name


# ------------------------------------------------------------------------------------ the pieces
def test_overlap_is_the_mean_fraction_of_shared_neighbours():
    rng = np.random.default_rng(0)
    old = np.stack([rng.permutation(50)[:6] for _ in range(40)])
    new = np.stack([rng.permutation(50)[:6] for _ in range(40)])
    new[:10] = old[:10, ::-1]  # the same neighbours in another order share all of them
    expected = np.mean([len(set(a[:4]) & set(b[:4])) / 4 for a, b in zip(new, old)])
    assert table_overlap(new, old, 4) == pytest.approx(expected)
    assert table_overlap(old, old, 6) == 1.0


@pytest.mark.parametrize("source", ["backbone", "projector"])
def test_the_refresh_embeds_in_eval_mode_and_leaves_batchnorm_alone(source, digits, tmp_path):
    cfg = config(epochs=2, refresh_every=1, refresh_from=source, data_dir=str(tmp_path))
    parts = build_parts(cfg, digits, torch.device("cpu"))
    method = parts.method.train()
    with torch.no_grad():  # a few training-mode passes, so BatchNorm's running statistics are not the initial ones
        for _ in range(3):
            method.backbone(torch.randn(64, 3, 8, 8))
    before = {k: v.clone() for k, v in method.state_dict().items()}
    vectors = embed_for_refresh(parts)
    assert method.training and all(m.training for m in method.modules())  # back to train mode
    assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())  # nothing moved
    features = extract_features(method.backbone, parts.images, digits.mean, digits.std, parts.device)
    if source == "backbone":
        assert torch.equal(vectors, features)  # what the kNN evaluation sees
    else:
        method.eval()
        with torch.no_grad():
            torch.testing.assert_close(vectors, method.projector(features))
    assert len(vectors) == len(digits.pretrain)


# ------------------------------------------------------------------------------------ in a run
def test_a_refresh_swaps_the_table_between_epochs_and_reports_it(tmp_path, digits):
    cfg = config(aug="weak", epochs=4, refresh_every=2, data_dir=str(tmp_path / "data"))
    result = train_run(cfg, tmp_path / "run", data=digits)
    metrics = RunDir(tmp_path / "run").read_metrics()
    keys = ("refresh_agreement", "refresh_overlap", "refresh_seconds")
    assert [all(key in m for key in keys) for m in metrics] == [False, True, False, False]  # after epoch 2 only
    refreshed = metrics[1]
    assert 0.0 <= refreshed["refresh_overlap"] < 1.0 and refreshed["refresh_seconds"] > 0
    table = RunDir(tmp_path / "run").load_checkpoint()["neighbor_table"]
    assert table["epoch"] == 2 and table["index"].shape == (len(digits.pretrain), 5)
    assert refreshed["refresh_agreement"] == prior_nn_agreement(table["index"].numpy(), digits.pretrain.labels, 5)
    assert result["prior_nn_agreement"] > 0.9  # result.json keeps the prior's agreement


def test_the_stored_table_is_the_exact_table_of_the_model_at_the_refresh(tmp_path, digits, monkeypatch):
    from benchmark import train

    seen = {}
    original = train.refresh_table

    def recording(parts, epoch):
        metrics = original(parts, epoch)
        vectors = embed_for_refresh(parts)  # the same model state the refresh embedded
        seen["rebuilt"] = build_table(vectors, 5, "l2", "auto", parts.device).index
        seen["installed"] = parts.gps.table.index.copy()
        return metrics

    monkeypatch.setattr(train, "refresh_table", recording)
    cfg = config(aug="weak", epochs=3, refresh_every=2, refresh_from="projector", data_dir=str(tmp_path / "data"))
    train_run(cfg, tmp_path / "run", data=digits)
    assert np.array_equal(seen["installed"], seen["rebuilt"])


@pytest.mark.parametrize("sampling", ["knn-uniform", "radius"])
def test_a_run_interrupted_after_a_refresh_resumes_with_the_refreshed_table(sampling, tmp_path, few_digits):
    """Preemption inside epoch 2, after the refresh at the end of epoch 1: the resumed run draws from the
    refreshed table (held by the checkpoint) and matches an uninterrupted run bit for bit (CPU)."""
    cfg = config(aug="weak", epochs=3, refresh_every=1, sampling=sampling, checkpoint_every=10, data_dir=str(tmp_path))
    straight = train_run(cfg, tmp_path / "straight", data=few_digits)
    steps = len(few_digits.pretrain) // cfg.batch_size
    polls = iter(range(10_000))
    with pytest.raises(RunInterrupted, match="epoch 2 after step 2"):
        train_run(cfg, tmp_path / "resumed", data=few_digits, interrupt=lambda: next(polls) + 1 == steps + 2)
    run = RunDir(tmp_path / "resumed")
    assert run.load_checkpoint()["neighbor_table"]["epoch"] == 1
    resumed = train_run(cfg, tmp_path / "resumed", resume=True, data=few_digits)
    straight_metrics = RunDir(tmp_path / "straight").read_metrics()
    assert [m["loss"] for m in run.read_metrics()] == [m["loss"] for m in straight_metrics]
    assert [m.get("refresh_agreement") for m in run.read_metrics()] == [
        m.get("refresh_agreement") for m in straight_metrics
    ]
    if sampling == "radius":  # adaptive tau follows the refreshed table's distances
        assert straight_metrics[0]["refresh_tau"] != straight["gps_tau"]
    assert resumed["knn_acc"] == straight["knn_acc"]


# ------------------------------------------------------------------------------------ two processes
WORLD = 2


def _worker(rank: int, port: int, out: str, data_dir: str) -> None:
    from benchmark import train

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank)
    )
    os.environ["WANDB_MODE"] = "disabled"
    torch.set_num_threads(1)
    original = train.refresh_table

    def recording(parts, epoch):
        metrics = original(parts, epoch)
        np.save(f"{out}/rank{rank}-epoch{epoch}.npy", parts.gps.table.index)
        return metrics

    train.refresh_table = recording
    data = load_dataset("digits", data_dir=data_dir, subset=400)
    cfg = config(aug="weak", epochs=3, refresh_every=1, data_dir=data_dir, batch_size=64)
    train.train_run(cfg, f"{out}/run", data=data)


def test_every_rank_draws_from_rank_0s_refreshed_table(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    load_dataset("digits", data_dir=tmp_path / "data", subset=400)  # cached before the processes start
    mp.spawn(_worker, args=(port, str(tmp_path), str(tmp_path / "data")), nprocs=WORLD, join=True)
    for epoch in (1, 2):
        tables = [np.load(tmp_path / f"rank{rank}-epoch{epoch}.npy") for rank in range(WORLD)]
        assert np.array_equal(tables[0], tables[1])
    metrics = RunDir(tmp_path / "run").read_metrics()
    assert [("refresh_overlap" in m) for m in metrics] == [True, True, False]
