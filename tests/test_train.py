"""End-to-end runs on real data (scikit-learn's digits, a CIFAR-10 subset) through the real loop."""

import json
import math

import pytest
import torch

from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError, TrainingError
from benchmark.methods import METHODS
from benchmark.neighbors import SAMPLING_RULES
from benchmark.rundir import RESULT_KEYS, RunDir
from benchmark.train import train_run
from tests.conftest import small_method_args

FAST = {"dataset": "digits", "batch_size": 128, "progress": False}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"))


def small_heads(method: str, **values) -> dict:
    """Heads small enough for CPU tests (the recipes' 2048-4096 widths cost seconds per step)."""
    return small_method_args(method, 256, proj_output_dim=64, queue_size=4096, **values)


def config(**values) -> RunConfig:
    """Digits with small heads."""
    return RunConfig.from_dict({**FAST, "method_args": small_heads(values.get("method", "simclr")), **values})


def test_run_directory_follows_the_contract(tmp_path, digits):
    cfg = config(method="simclr", aug="weak", epochs=2)
    result = train_run(cfg, tmp_path / "run", data=digits)
    run = RunDir(tmp_path / "run")
    for path in (run.config, run.status, run.metrics, run.result, run.checkpoint):
        assert path.is_file(), path
    stored = json.loads(run.result.read_text())
    assert set(RESULT_KEYS) <= set(stored) and stored == json.loads(json.dumps(result))
    assert stored["run_id"] == cfg.run_id and stored["prior_nn_agreement"] is None
    for key in ("knn_acc", "knn200_acc", "linear_acc", "val_knn_acc", "val_linear_acc"):
        assert 0.0 <= stored[key] <= 1.0
    assert stored["knn_acc"] > 0.5  # digits are easy: anything trained and evaluated right is far above 0.1
    status = json.loads(run.status.read_text())
    assert status["state"] == "done" and status["attempt"] == 1 and status["error"] is None
    metrics = run.read_metrics()
    assert [m["epoch"] for m in metrics] == [1, 2] and all(m["loss"] > 0 for m in metrics)
    reloaded = RunConfig.from_dict(json.loads(run.config.read_text()))
    assert reloaded.run_id == cfg.run_id  # config.json is the resolved config: it reproduces the run


def test_eval_every_logs_knn_and_the_label_free_quality_of_the_val_features(tmp_path, digits):
    """At every eval_every epoch metrics.jsonl has val_knn_acc, rankme, alignment and uniformity; at the last
    epoch they are the values result.json reports for the same backbone and val images."""
    result = train_run(config(method="simclr", aug="weak", epochs=2, eval_every=1), tmp_path / "run", data=digits)
    metrics = RunDir(tmp_path / "run").read_metrics()
    keys = ("val_knn_acc", "rankme", "alignment", "uniformity")
    assert all(set(keys) <= set(m) for m in metrics) and metrics[0]["rankme"] != metrics[1]["rankme"]
    for key in keys:
        assert metrics[-1][key] == pytest.approx(result[key], rel=1e-4), key
    assert 1.0 < metrics[-1]["rankme"] <= len(digits.val.images)


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_trains_and_lowers_its_loss(method, tmp_path, digits):
    result = train_run(config(method=method, aug="strong", epochs=3, lr=0.2), tmp_path / method, data=digits)
    losses = [m["loss"] for m in RunDir(tmp_path / method).read_metrics()]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    if METHODS.get(method).loss_falls_in_short_runs:
        assert losses[-1] < losses[0]
    assert result["knn_acc"] > 0.5


@pytest.mark.parametrize("refresh", [False, True], ids=["plain", "after-a-table-refresh"])
def test_resume_continues_exactly(refresh, tmp_path, digits, monkeypatch):
    values = dict(method="byol", aug="strong", epochs=4, checkpoint_every=1)
    if refresh:  # GPS with its neighbour table rebuilt after epoch 2: the resumed run draws from the rebuilt one
        values.update(prior="pixel", k=5, refresh_every=2, data_dir=str(tmp_path / "data"))
    cfg = config(**values)
    straight = train_run(cfg, tmp_path / "straight", data=digits)

    original = RunDir.save_checkpoint

    def preempted(self, state):
        original(self, state)
        if state["epoch"] == 2:
            raise RuntimeError("simulated preemption after epoch 2")

    monkeypatch.setattr(RunDir, "save_checkpoint", preempted)
    with pytest.raises(RuntimeError, match="simulated"):
        train_run(cfg, tmp_path / "resumed", data=digits)
    run = RunDir(tmp_path / "resumed")
    assert run.read_status()["state"] == "failed" and "simulated" in run.read_status()["error"]
    table = run.load_checkpoint()["neighbor_table"]
    assert (table is not None and table["epoch"] == 2) if refresh else table is None
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    resumed = train_run(cfg, tmp_path / "resumed", resume=True, data=digits)
    straight_losses = [m["loss"] for m in RunDir(tmp_path / "straight").read_metrics()]
    resumed_metrics = run.read_metrics()
    assert [m["epoch"] for m in resumed_metrics] == [1, 2, 3, 4]
    assert [m["loss"] for m in resumed_metrics] == straight_losses  # bit-exact on the CPU
    assert run.read_status()["attempt"] == 2
    for key in ("knn_acc", "linear_acc", "val_knn_acc"):
        assert resumed[key] == straight[key]


@pytest.mark.parametrize("method", METHODS.names())
def test_interrupt_checkpoints_mid_epoch_and_resumes_exactly(method, tmp_path, digits):
    """The preemption path: stop after the second step of epoch 2, checkpoint there, resume, and match
    an uninterrupted run bit for bit (CPU): every method's state (EMA targets, queues) is saved."""
    cfg = config(method=method, aug="strong", epochs=3, checkpoint_every=10)
    straight = train_run(cfg, tmp_path / "straight", data=digits)
    steps = len(digits.pretrain) // cfg.batch_size
    polls = iter(range(10_000))
    stop_at = steps + 2  # inside epoch 2, after its second step

    from benchmark.train import RunInterrupted

    with pytest.raises(RunInterrupted, match="epoch 2 after step 2"):
        train_run(cfg, tmp_path / "resumed", data=digits, interrupt=lambda: next(polls) + 1 == stop_at)
    run = RunDir(tmp_path / "resumed")
    status = run.read_status()
    assert status["state"] == "pending" and "epoch 2" in status["note"] and status["error"] is None
    assert run.load_checkpoint()["position"]["step"] == 2 and [m["epoch"] for m in run.read_metrics()] == [1]
    resumed = train_run(cfg, tmp_path / "resumed", resume=True, data=digits)
    assert [m["loss"] for m in run.read_metrics()] == [m["loss"] for m in RunDir(tmp_path / "straight").read_metrics()]
    assert run.read_status()["attempt"] == 2 and run.read_status()["state"] == "done"
    for key in ("knn_acc", "linear_acc"):
        assert resumed[key] == straight[key]


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path, digits):
    train_run(config(method="simclr", epochs=1), tmp_path / "run", data=digits)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(ConfigError, match="config changed"):
        train_run(config(method="simclr", epochs=2), tmp_path / "run", resume=True, data=digits)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before  # refused before any write


def test_diverging_run_fails_with_its_error(tmp_path, digits):
    with pytest.raises(TrainingError, match="diverged"):
        train_run(config(method="simclr", epochs=2, lr=1e30, optimizer="sgd"), tmp_path / "nan", data=digits)
    status = RunDir(tmp_path / "nan").read_status()
    assert status["state"] == "failed" and "loss became nan" in status["error"]
    assert not RunDir(tmp_path / "nan").result.exists()


def test_wandb_offline_writes_local_files(tmp_path, digits):
    train_run(config(method="simclr", epochs=1, wandb_mode="offline"), tmp_path / "run", data=digits)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_checkpoint_backbone_loads_as_weights(tmp_path, digits):
    from benchmark.backbones import build_backbone

    train_run(config(method="simclr", epochs=1), tmp_path / "run", data=digits)
    model, _ = build_backbone("small", 8, weights=tmp_path / "run" / "checkpoint.pt")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["method"]
    assert torch.equal(model.state_dict()["features.0.weight"], state["backbone.features.0.weight"])


@pytest.mark.slow
@pytest.mark.real_data
def test_cifar10_subset_byol_beats_random_init(tmp_path, cifar_path, cifar_data_dir):
    """Real CIFAR-10 JPEGs, 2,000-image class-balanced subset, small CNN, BYOL's reference recipe with
    strong DA, 8 epochs (56 steps). So early, colour-invariant features do not yet beat a random
    network's in kNN (both about 0.30: random features keep colour), but a linear probe already gains
    about 5 points (0.36 -> 0.41); SimCLR's heavier jitter and blur need longer."""
    data = load_dataset("cifar10", data_dir=cifar_data_dir, data_path=cifar_path, subset=2000)
    base = dict(dataset="cifar10", backbone="small", method="byol", aug="strong", progress=False)
    random_init = train_run(RunConfig.from_dict({**base, "epochs": 0}), tmp_path / "random", data=data)
    trained = train_run(RunConfig.from_dict({**base, "epochs": 8}), tmp_path / "trained", data=data)
    assert trained["linear_acc"] > random_init["linear_acc"] + 0.025, (trained, random_init)


REQUIRED_SAMPLING_ARGS = {"kmeans-cluster": {"clusters": 10}}  # a rule's settings that have no default


@pytest.mark.parametrize("sampling", SAMPLING_RULES.names())
def test_gps_run_reports_its_prior(sampling, tmp_path, digits):
    cfg = config(
        method="simclr",
        aug="weak",
        epochs=2,
        prior="pixel",
        k=5,
        sampling=sampling,
        sampling_args=REQUIRED_SAMPLING_ARGS.get(sampling, {}),
        data_dir=str(tmp_path / "data"),
        method_args=small_heads("simclr", mask_false_negatives=True),
    )
    result = train_run(cfg, tmp_path / "gps", data=digits)
    assert result["prior_nn_agreement"] > 0.9  # digits' pixel neighbours nearly always share the label
    assert result["gps_embedding_dim"] == 8 * 8 * 3 and result["gps_table_method"] == "exact-faiss"
    assert (result["gps_tau"] is None) == (not SAMPLING_RULES.get(sampling).needs_radius)
    assert result["knn_acc"] > 0.5 and result["sampling"] == sampling
    again = train_run(cfg, tmp_path / "gps-again", data=digits)
    assert again["gps_embedding_cached"] and again["gps_table_cached"]  # the second run recomputes nothing
    assert again["knn_acc"] == result["knn_acc"]  # same config, same seed: the same run


def test_a_run_stopped_after_the_last_step_of_an_epoch_resumes_exactly(tmp_path, digits):
    """A stop (Ctrl-C of a sweep, preemption) right after an epoch's last step leaves no step of that
    epoch to train on resume: the epoch is logged all the same, as an uninterrupted run logs it."""
    from benchmark.train import RunInterrupted

    cfg = config(method="simclr", aug="weak", epochs=2, checkpoint_every=10)
    straight = train_run(cfg, tmp_path / "straight", data=digits)
    polls = iter(range(10_000))
    steps = len(digits.pretrain) // cfg.batch_size
    with pytest.raises(RunInterrupted, match=f"epoch 1 after step {steps}/{steps}"):
        train_run(cfg, tmp_path / "stopped", data=digits, interrupt=lambda: next(polls) + 1 == steps)
    resumed = train_run(cfg, tmp_path / "stopped", resume=True, data=digits)
    logged = [
        [(m["epoch"], m["loss"], m["lr"]) for m in RunDir(tmp_path / run).read_metrics()]
        for run in ("stopped", "straight")
    ]
    assert logged[0] == logged[1]
    assert resumed["knn_acc"] == straight["knn_acc"]
