"""solo-learn's online linear classifier (`online_linear`, benchmark/online.py): it never reaches
pretraining (its gradient stops at the detached features; the method trains exactly as without it),
it trains as solo-learn's (own lr and schedule, no weight decay, each view with its image's label),
the honest head never sees a val label, and the test-selected reading follows the references'
early stopping. On real digits with real methods."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.assembly import PairStep, build_parts
from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.online import HEAD_SEED_OFFSET, SelectionOnTest, classifier_lr
from benchmark.train import train_run
from tests.conftest import small_method_args


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"))


def config_of(tmp_path, **values) -> RunConfig:
    base = {"dataset": "digits", "backbone": "small", "batch_size": 64, "epochs": 4, "progress": False}
    method = values.get("method", "simclr")
    args = small_method_args(method, 64, proj_output_dim=32, queue_size=256)
    return RunConfig.from_dict({**base, "method_args": args, "data_dir": str(tmp_path), **values})


def run_steps(digits, tmp_path, steps: int = 3, **values):
    parts = build_parts(config_of(tmp_path, **values), digits, torch.device("cpu"), results_dir=tmp_path)
    step = PairStep(parts)
    generator = torch.Generator().manual_seed(11)
    for i in range(steps):
        anchors = torch.randperm(len(parts.images), generator=generator)[:64]
        step(anchors, 0.05, (i + 1) / 10, classifier_lr=0.3, started=i / 10)
    return parts


@pytest.mark.parametrize(
    "values",
    [
        {"method": "simclr"},
        {"method": "byol", "prior": "pixel", "k": 5},
        {"method": "simsiam"},
        {"method": "nnclr", "prior": "pixel", "k": 5, "positives": 2},
        {"method": "simclr", "positives": 3, "method_args.bn_per_view": False},
    ],
    ids=["simclr", "byol-gps", "simsiam-sgd", "nnclr-two-positives", "simclr-joint-three-positives"],
)
def test_the_method_trains_exactly_as_without_the_classifier(digits, tmp_path, values):
    """Same seed, same steps: every tensor of the method (backbone, heads, targets, queues, BatchNorm
    statistics) and the optimiser's state of its parameters are equal, bit for bit."""
    values = dict(values)
    joint = values.pop("method_args.bn_per_view", None)
    if joint is not None:
        values["method_args"] = {**small_method_args(values["method"], 64, proj_output_dim=32), "bn_per_view": joint}
    plain = run_steps(digits, tmp_path, **values)
    online = run_steps(digits, tmp_path, online_linear=True, **values)
    for (name, a), (_, b) in zip(plain.method.state_dict().items(), online.method.state_dict().items()):
        assert torch.equal(a, b), name
    heads = {id(p) for p in online.online.heads.parameters()}
    method_states = [s for p, s in online.optimizer.state.items() if id(p) not in heads]
    assert len(method_states) == len(plain.optimizer.state)
    for a, b in zip(plain.optimizer.state.values(), method_states):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in online.online.heads.parameters())


def test_the_classifiers_gradient_never_reaches_the_backbone(digits, tmp_path):
    """A step of the classifier's loss alone: the heads move, no parameter of the method gets a gradient
    or changes."""
    parts = build_parts(config_of(tmp_path, online_linear=True), digits, torch.device("cpu"), results_dir=tmp_path)
    step = PairStep(parts)
    anchors = torch.arange(64)
    v1, v2, positives = step.views(anchors)
    heads_before = [p.detach().clone() for p in parts.online.heads.parameters()]
    loss, classifier = step.losses(v1, v2, anchors, positives)
    before = {k: v.clone() for k, v in parts.method.state_dict().items()}  # after the forward (BatchNorm)
    assert classifier is not None and classifier.requires_grad
    parts.optimizer.zero_grad(set_to_none=True)
    classifier.backward()
    assert all(p.grad is None for p in parts.method.parameters())
    parts.optimizer.step()
    after = parts.method.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, b) for a, b in zip(heads_before, parts.online.heads.parameters()))


def test_the_heads_train_as_solo_learns_classifier(digits, tmp_path):
    """Groups of their own in the method's optimiser, without weight decay, at the classifier's lr under
    its own schedule; LARS adapts the weight and leaves the bias (exclude_bias_n_norm)."""
    parts = run_steps(digits, tmp_path, steps=1, online_linear=True, method="byol")
    groups = [g for g in parts.optimizer.param_groups if g.get("schedule") == "classifier"]
    assert sum(len(g["params"]) for g in groups) == 4  # two heads: weight and bias each
    assert all(g["weight_decay"] == 0.0 and g["lr"] == 0.3 for g in groups)  # the step's classifier_lr
    assert {(g["params"][0].ndim, g["lars"]) for g in groups} == {(2, True), (1, False)}
    others = [g for g in parts.optimizer.param_groups if g.get("schedule") is None]
    assert all(g["lr"] == 0.05 for g in others)
    # the recipe's classifier lr (solo-learn's classifier_lr, scaled by batch / 256 as lr is)
    for values, expected in (
        ({"method": "byol", "batch_size": 128}, 0.1 * 128 / 256),
        ({"method": "mocov3", "batch_size": 256}, 0.3),
        ({"classifier_lr": 0.7}, 0.7),
    ):
        config = config_of(tmp_path, **values)
        assert classifier_lr(config.classifier_lr, config.recipe, config.batch_size) == pytest.approx(expected)


def test_each_view_is_labelled_with_its_images_label_and_the_val_head_sees_no_val_label(digits, tmp_path):
    parts = build_parts(
        config_of(tmp_path, online_linear=True, prior="pixel", k=5), digits, torch.device("cpu"), results_dir=tmp_path
    )
    labels = torch.as_tensor(digits.pretrain.labels)
    anchors, positives = torch.tensor([0, 1, len(digits.train) + 2]), torch.tensor([5, len(digits.train), 7])
    step_labels = parts.online.step_labels(anchors, positives)
    assert torch.equal(step_labels[0], labels[torch.cat([anchors, positives])])  # the neighbour's own label
    assert step_labels[1].tolist() == [labels[0], labels[1], -1, labels[5], -1, labels[7]]  # val rows: unseen
    assert (parts.online.labels[1] >= 0).sum() == len(digits.train)


def test_heads_start_from_their_own_generator(digits, tmp_path):
    """The heads' initialisation draws nothing from the run's global stream."""
    config = config_of(tmp_path, online_linear=True)
    torch.manual_seed(0)
    build_parts(config, digits, torch.device("cpu"), results_dir=tmp_path)
    with_heads = torch.rand(3)
    torch.manual_seed(0)
    build_parts(config_of(tmp_path), digits, torch.device("cpu"), results_dir=tmp_path)
    assert torch.equal(with_heads, torch.rand(3))
    assert HEAD_SEED_OFFSET > 0


def test_test_selection_follows_the_references_early_stopping():
    """Best test accuracy so far; once `patience` epochs pass without a gain, the reading is frozen
    (gps-ssl main_nn.py: EarlyStopping on val_acc1, patience max_epochs // 10, min_delta 0)."""
    selection = SelectionOnTest(patience=2)
    for epoch, accuracy in enumerate([0.5, 0.6, 0.6, 0.55, 0.9, 0.95], start=1):
        selection.see(epoch, accuracy)
    assert (selection.best, selection.best_epoch, selection.stopped_at) == (0.6, 2, 4)
    never = SelectionOnTest(patience=3)
    for epoch, accuracy in enumerate([0.1, 0.2, 0.3], start=1):
        never.see(epoch, accuracy)
    assert (never.best, never.best_epoch, never.stopped_at) == (0.3, 3, None)


def test_online_linear_enters_run_id_only_when_asked_for(tmp_path):
    plain = RunConfig.from_dict({"prior": "pixel", "k": 5})
    assert plain.run_id == "636111ef6ec5"  # the pinned id (tests/test_run_identity.py)
    assert RunConfig.from_dict({"prior": "pixel", "k": 5, "online_linear": False, "classifier_lr": 0.5}).run_id == (
        plain.run_id
    )
    online = RunConfig.from_dict({"prior": "pixel", "k": 5, "online_linear": True})
    assert online.run_id != plain.run_id
    # what its readings depend on: the classifier's effective lr and the epochs evaluated
    assert RunConfig.from_dict({**online.to_dict(), "eval_every": 5}).run_id != online.run_id
    assert RunConfig.from_dict({**online.to_dict(), "classifier_lr": 0.5}).run_id != online.run_id
    assert RunConfig.from_dict({**online.to_dict(), "classifier_lr": 0.1}).run_id == online.run_id  # the recipe's
    with pytest.raises(ConfigError, match="classifier_lr must be >= 0"):
        RunConfig.from_dict({"classifier_lr": -1})


@pytest.mark.slow
def test_a_run_reports_both_readings_and_resumes_them_exactly(digits, tmp_path):
    """A 4-epoch run evaluating every 2 epochs: metrics.jsonl has the classifier's loss each epoch and
    its accuracies at epochs 2 and 4; result.json the last epoch's two readings and the test-selected
    one. A run stopped mid-epoch 3 and resumed ends with the same metrics and readings."""
    from benchmark.train import RunInterrupted

    config = config_of(tmp_path, online_linear=True, eval_every=2, checkpoint_every=10, method="byol")
    whole = train_run(config, tmp_path / "whole", data=digits)
    lines = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert all("online_class_loss" in line for line in lines)
    assert [line["epoch"] for line in lines if "online_linear_acc" in line] == [2, 4]
    assert whole["online_linear_acc"] == lines[-1]["online_linear_acc"]
    assert whole["val_online_linear_acc"] == lines[-1]["val_online_linear_acc"]
    best = max(line["online_linear_acc"] for line in lines if "online_linear_acc" in line)
    assert whole["online_linear_acc_test_selected"] == best
    assert whole["online_linear_test_selected_epoch"] in (2, 4)
    steps = len(digits.pretrain) // config.batch_size
    polls = iter(range(10_000))
    with pytest.raises(RunInterrupted):
        train_run(config, tmp_path / "resumed", data=digits, interrupt=lambda: next(polls) + 1 == 2 * steps + 2)
    resumed = train_run(config, tmp_path / "resumed", resume=True, data=digits)
    again = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    keys = ("loss", "online_class_loss", "online_linear_acc", "val_online_linear_acc")
    assert [[line.get(k) for k in keys] for line in again] == [[line.get(k) for k in keys] for line in lines]
    for key in ("online_linear_acc", "val_online_linear_acc", "online_linear_acc_test_selected"):
        assert resumed[key] == whole[key]
