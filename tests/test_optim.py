"""Optimisers and schedule: LARS against a hand-written per-tensor step, parameter groups, the
recipe's linear lr scaling, and the warm-up + cosine schedule."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn as nn

from benchmark.config import RunConfig
from benchmark.errors import ConfigError
from benchmark.methods import METHODS
from benchmark.optim import LARS, OPTIMIZERS, build_optimizer, lr_at, param_groups, resolve_optim, set_lr

pytestmark = pytest.mark.usefixtures("one_thread")


def optim_of(config: RunConfig) -> dict:
    """The config's optimiser settings, its method's recipe handed in as train hands it."""
    return resolve_optim(config, METHODS.get(config.method).recipe)


# ------------------------------------------------------------------------------ schedule
def solo_learn_lr(step: int, total: int, warmup: int, base: float, start: float) -> float:
    """solo-learn's LinearWarmupCosineAnnealingLR in closed form (solo/utils/lr_scheduler.py,
    _get_closed_form_lr, eta_min 0), written out again here."""
    if step < warmup:
        return start + step * (base - start) / (warmup - 1)
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def test_lr_follows_solo_learns_warmup_cosine():
    base, total, warmup, start = 0.8, 100, 10, 3e-5
    lrs = [lr_at(step, total, warmup, base, start) for step in range(total + 1)]
    for step, lr in enumerate(lrs):
        assert lr == pytest.approx(solo_learn_lr(step, total, warmup, base, start), rel=1e-12, abs=1e-15), step
    assert lrs[0] == start and lrs[warmup - 1] == pytest.approx(base) and lrs[warmup] == pytest.approx(base)
    assert lrs[total] == pytest.approx(0.0, abs=1e-12) and lrs[55] == pytest.approx(base / 2)
    assert all(a < b for a, b in zip(lrs[:warmup], lrs[1:warmup]))
    assert all(a > b for a, b in zip(lrs[warmup:], lrs[warmup + 1 :]))
    assert lr_at(500, total, warmup, base, start) == pytest.approx(0.0, abs=1e-12)  # clamped past the end


def test_lr_without_warmup_and_degenerate_spans():
    assert lr_at(0, 50, 0, 0.3) == pytest.approx(0.3)
    assert lr_at(25, 50, 0, 0.3) == pytest.approx(0.15)
    assert lr_at(0, 5, 1, 1.0, 0.1) == pytest.approx(0.1)  # one warm-up step: the start lr
    assert lr_at(1, 5, 1, 1.0, 0.1) == pytest.approx(1.0)
    assert lr_at(5, 5, 5, 1.0) == pytest.approx(1.0)  # no division by a zero-length cosine
    assert lr_at(0, 1, 0, 1.0) == pytest.approx(1.0)


def test_set_lr_sets_every_group():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    optimizer = build_optimizer("lars", model, lr=1.0, weight_decay=0.1, args={"exclude_bias_n_norm": True})
    set_lr(optimizer, 0.25, 1.0)
    assert [g["lr"] for g in optimizer.param_groups] == [0.25, 0.25]


class WithStaticHead(nn.Sequential):
    """A model that, like SimSiam, keeps one module at the base lr."""

    def static_lr_modules(self):
        return [self[1]]


def test_static_lr_modules_keep_the_base_lr_while_the_rest_follow_the_schedule():
    model = WithStaticHead(nn.Linear(3, 3), nn.Linear(3, 3))
    optimizer = build_optimizer("lars", model, lr=0.5, weight_decay=0.1, args={"exclude_bias_n_norm": True})
    set_lr(optimizer, 0.1, 0.5)
    by_param = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert [by_param[id(p)] for p in model[0].parameters()] == [0.1, 0.1]
    assert [by_param[id(p)] for p in model[1].parameters()] == [0.5, 0.5]
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decay[id(model[1].weight)] == 0.1 and decay[id(model[1].bias)] == 0.0  # split as every group is


def test_simsiam_predictor_keeps_the_base_lr_as_solo_learn_does():
    from benchmark.methods import METHODS, MethodContext, resolve_method_params

    cls = METHODS.get("simsiam")
    params = resolve_method_params("simsiam", {"proj_hidden_dim": 8, "proj_output_dim": 8, "pred_hidden_dim": 4})
    method = cls(nn.Flatten(), 12, params, MethodContext(num_train=10, epochs=1))
    static = {id(p) for p in method.predictor.parameters()}
    optimizer = build_optimizer("sgd", method, lr=0.5, weight_decay=1e-5)
    set_lr(optimizer, 0.01, 0.5)
    for group in optimizer.param_groups:
        assert group["lr"] == (0.5 if {id(p) for p in group["params"]} <= static else 0.01)
    # one static group: every tensor decays alike under SGD (solo-learn's exclude_bias_n_norm_wd: False)
    assert sum(g["static_lr"] for g in optimizer.param_groups) == 1
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 1e-5 for p in g["params"]}
    assert decayed == {id(p) for p in method.parameters()}  # biases and BatchNorm parameters included


# ---------------------------------------------------------------------------- groups
class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)
        self.norm = nn.LayerNorm(2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        return self.norm(self.fc(self.bn(self.conv(x)).mean((2, 3))))


def test_param_groups_split_weights_from_biases_and_norms():
    model = Tiny()
    decay, plain = param_groups(model, weight_decay=0.05)
    assert decay["weight_decay"] == 0.05 and decay["lars"] is True
    assert plain["weight_decay"] == 0.0 and plain["lars"] is False
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(decay["params"]) == ids([model.conv.weight, model.fc.weight])
    assert ids(plain["params"]) == ids(
        [model.bn.weight, model.bn.bias, model.fc.bias, model.norm.weight, model.norm.bias]
    )
    assert not ids([model.frozen.weight, model.frozen.bias]) & (ids(decay["params"]) | ids(plain["params"]))
    (everything,) = param_groups(model, weight_decay=0.05, exclude_bias_n_norm=False)
    assert everything["lars"] and everything["weight_decay"] == 0.05
    assert ids(everything["params"]) == ids(decay["params"]) | ids(plain["params"])


@pytest.mark.parametrize("name, cls", [("lars", LARS), ("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
def test_build_optimizer(name, cls):
    model = Tiny()
    optimizer = build_optimizer(name, model, lr=0.3, weight_decay=0.01)
    assert type(optimizer) is cls
    assert all(g["lr"] == 0.3 for g in optimizer.param_groups)
    if name == "lars":  # LARS's own default: biases and norms are adapted and decayed like weights
        assert [(g["weight_decay"], g["lars"]) for g in optimizer.param_groups] == [(0.01, True)]
        assert (optimizer.defaults["eta"], optimizer.defaults["clip_lr"]) == (1e-3, False)
    else:  # solo-learn's default (exclude_bias_n_norm_wd: False): every tensor decays
        assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01]
        assert all("lars" not in g for g in optimizer.param_groups)
        spared = build_optimizer(name, Tiny(), lr=0.3, weight_decay=0.01, args={"exclude_bias_n_norm_wd": True})
        assert [g["weight_decay"] for g in spared.param_groups] == [0.01, 0.0]
        assert [p.ndim for p in spared.param_groups[1]["params"]] == [1] * 5  # BN, fc and LayerNorm 1-d tensors
    if name == "sgd":
        assert optimizer.param_groups[0]["momentum"] == 0.9
    assert OPTIMIZERS.names() == ["adamw", "lars", "sgd"]


def test_build_optimizer_applies_optimizer_args():
    lars = build_optimizer("lars", Tiny(), 0.3, 0.01, {"eta": 0.02, "clip_lr": True, "exclude_bias_n_norm": True})
    assert (lars.defaults["eta"], lars.defaults["clip_lr"]) == (0.02, True)
    assert [g["lars"] for g in lars.param_groups] == [True, False]
    assert build_optimizer("sgd", Tiny(), 0.3, 0.0, {"momentum": 0.5}).param_groups[0]["momentum"] == 0.5
    assert build_optimizer("adamw", Tiny(), 0.3, 0.0, {"beta1": 0.8}).param_groups[0]["betas"] == (0.8, 0.999)
    with pytest.raises(ConfigError, match="unknown optimizer_args key for lars 'etaa'.*did you mean 'eta'"):
        build_optimizer("lars", Tiny(), 0.3, 0.0, {"etaa": 0.1})


# ------------------------------------------------------------------------------ LARS
def norm(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


def reference_lars_step(model, state, lr, wd, momentum=0.9, eta=0.02, clip_lr=True, exclude=True, eps=1e-8):
    """solo-learn's LARS (solo/utils/lars.py) re-derived one tensor at a time with Python scalars:
    for a weight (or any tensor when nothing is excluded) with both norms > 0,
    r = eta ||w|| / (||g|| + wd ||w|| + eps), clipped to min(r / lr, 1), and d = r (g + wd w);
    otherwise d = g (excluded tensors take no decay). v <- momentum v + d; w <- w - lr v."""
    for p in model.parameters():
        w_flat, g_flat = p.detach().flatten().tolist(), p.grad.flatten().tolist()
        w_norm, g_norm = norm(w_flat), norm(g_flat)
        update = list(g_flat)
        if (p.ndim > 1 or not exclude) and w_norm > 0 and g_norm > 0:
            ratio = eta * w_norm / (g_norm + wd * w_norm + eps)
            if clip_lr:
                ratio = min(ratio / lr, 1.0)
            update = [(g + wd * w) * ratio for g, w in zip(g_flat, w_flat)]
        buffer = state.setdefault(id(p), [0.0] * len(update))
        for k, u in enumerate(update):
            buffer[k] = momentum * buffer[k] + u
        new = [w - lr * v for w, v in zip(w_flat, buffer)]
        with torch.no_grad():
            p.copy_(torch.tensor(new, dtype=p.dtype).view_as(p))


class Mlp(nn.Module):
    """Linear-BN-ReLU-Linear: two LARS weights, three vectors (BN affine, bias)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2, 0.5])
@pytest.mark.parametrize(
    "clip_lr, exclude, lr",
    [(True, True, 0.5), (True, True, 0.01), (False, False, 0.5), (True, False, 0.05), (False, True, 0.5)],
)
def test_lars_matches_solo_learns_rule_for_three_steps(weight_decay, clip_lr, exclude, lr):
    torch.manual_seed(0)
    model = Mlp().double()
    with torch.no_grad():
        model.bn.weight.mul_(1.5).add_(0.1)
        model.fc2.weight[0].zero_()  # a zero row keeps ||w|| > 0; LARS still applies per tensor
    reference = copy.deepcopy(model)
    x = torch.randn(16, 4, dtype=torch.float64)
    target = torch.randn(16, 3, dtype=torch.float64)
    args = {"eta": 0.02, "clip_lr": clip_lr, "exclude_bias_n_norm": exclude}
    optimizer = build_optimizer("lars", model, lr, weight_decay, args)
    ref_state: dict = {}
    for step in range(3):
        for net in (model, reference):
            net.zero_grad(set_to_none=True)
            (net(x + 0.1 * step) - target).pow(2).mean().backward()
        for p in model.parameters():  # gradients well above rounding noise: the comparison is meaningful
            assert p.grad.norm() > 1e-4
        optimizer.step()
        reference_lars_step(reference, ref_state, lr, weight_decay, clip_lr=clip_lr, exclude=exclude)
        for (name, p), q in zip(model.named_parameters(), reference.parameters()):
            torch.testing.assert_close(
                p, q, rtol=1e-9, atol=1e-12, msg=lambda m, step=step, name=name: f"step {step}: {name}: {m}"
            )


def hand_lars_step(lr: float) -> list[float]:
    """One step of w = [3, 4] (||w|| = 5), g = [0, 2] (||g|| = 2), wd 0.1, eta 0.02, clip_lr, by hand:
    r = 0.02 * 5 / (2 + 0.1 * 5 + 1e-8) = 0.04 (to 1e-10); clipped: min(0.04 / lr, 1);
    g + wd w = [0.3, 2.4]; the first momentum buffer is the step itself."""
    ratio = min(0.1 / (2.5 + 1e-8) / lr, 1.0)
    return [3 - lr * ratio * 0.3, 4 - lr * ratio * 2.4]


@pytest.mark.parametrize("lr, expected", [(1.0, [2.988, 3.904]), (0.01, [2.997, 3.976])])
def test_one_lars_step_against_the_formula_by_hand(lr, expected):
    """lr 1: the trust ratio acts (step 0.04 (g + wd w)); lr 0.01: it is clipped to the lr."""
    assert hand_lars_step(lr) == pytest.approx(expected, abs=1e-9)
    w = nn.Parameter(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    optimizer = LARS([{"params": [w], "weight_decay": 0.1, "lars": True}], lr=lr, eta=0.02, clip_lr=True)
    w.grad = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    optimizer.step()
    assert (w.detach().flatten() - torch.tensor(hand_lars_step(lr), dtype=torch.float64)).abs().max() < 1e-12


def test_lars_zero_weight_or_zero_grad_is_plain_sgd_without_decay():
    w = nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
    optimizer = LARS([{"params": [w], "weight_decay": 0.1, "lars": True}], lr=0.5, clip_lr=True)
    w.grad = torch.ones(2, 2, dtype=torch.float64)
    optimizer.step()
    torch.testing.assert_close(w.detach(), torch.full((2, 2), -0.5, dtype=torch.float64))
    v = nn.Parameter(torch.ones(2, 2, dtype=torch.float64))
    optimizer = LARS([{"params": [v], "weight_decay": 0.1, "lars": True}], lr=0.5)
    v.grad = torch.zeros(2, 2, dtype=torch.float64)
    optimizer.step()  # g = 0: d = g, solo-learn applies no decay either
    torch.testing.assert_close(v.detach(), torch.ones(2, 2, dtype=torch.float64))


def test_lars_plain_group_is_momentum_sgd():
    torch.manual_seed(1)
    params = [nn.Parameter(torch.randn(4, dtype=torch.float64)), nn.Parameter(torch.randn(3, dtype=torch.float64))]
    twins = [nn.Parameter(p.detach().clone()) for p in params]
    lars = LARS([{"params": params, "weight_decay": 0.0, "lars": False}], lr=0.1)
    sgd = torch.optim.SGD(twins, lr=0.1, momentum=0.9)
    for _ in range(3):
        grads = [torch.randn_like(p) for p in params]
        for p, q, g in zip(params, twins, grads):
            p.grad, q.grad = g.clone(), g.clone()
        lars.step()
        sgd.step()
        for p, q in zip(params, twins):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


def test_lars_skips_params_without_grad():
    a = nn.Parameter(torch.ones(2, 2))
    b = nn.Parameter(torch.ones(2, 2))
    optimizer = LARS([{"params": [a, b], "weight_decay": 0.1, "lars": True}], lr=0.5)
    a.grad = torch.ones(2, 2)
    optimizer.step()
    assert torch.equal(b, torch.ones(2, 2)) and not torch.equal(a, torch.ones(2, 2))
    assert b not in optimizer.state


# ------------------------------------------------------------------------------ recipe
@pytest.mark.parametrize("method", METHODS.names())
@pytest.mark.parametrize("batch_size", [64, 256, 512])
def test_resolve_optim_scales_recipe_lr_by_batch(method, batch_size):
    recipe = METHODS.get(method).recipe
    resolved = optim_of(RunConfig(method=method, batch_size=batch_size))
    assert resolved["lr"] == pytest.approx(recipe.lr * batch_size / 256)
    assert resolved["optimizer"] == recipe.optimizer
    assert resolved["weight_decay"] == recipe.weight_decay
    defaults = dataclasses.asdict(OPTIMIZERS.get(recipe.optimizer).Params())
    assert resolved["optimizer_args"] == {**defaults, **recipe.optimizer_args}
    assert (resolved["warmup_epochs"], resolved["warmup_start_lr"]) == (10, 3e-5)


def test_resolve_optim_keeps_explicit_values_and_derives_warmup():
    config = RunConfig(method="byol", batch_size=512, lr=0.05, optimizer="sgd", weight_decay=0.0, warmup_epochs=3)
    assert optim_of(config) == {
        "optimizer": "sgd",
        "lr": 0.05,
        "weight_decay": 0.0,
        "warmup_epochs": 3,
        "optimizer_args": {"momentum": 0.9, "exclude_bias_n_norm_wd": False},
        "warmup_start_lr": 3e-5,
    }
    assert optim_of(RunConfig(method="byol", batch_size=512))["lr"] == pytest.approx(2.0)
    assert optim_of(RunConfig(method="simclr", batch_size=128))["lr"] == pytest.approx(0.2)
    assert optim_of(RunConfig(method="simclr", lr=0.0))["lr"] == 0.0  # 0 is set, not unset
    for epochs, warmup in ((100, 10), (400, 10), (99, 9), (30, 3), (12, 1), (5, 0)):
        assert optim_of(RunConfig(epochs=epochs))["warmup_epochs"] == warmup
    from_dict = RunConfig.from_dict({"method": "vicreg", "batch_size": 1024})
    assert optim_of(from_dict)["lr"] == pytest.approx(0.3 * 4)
    own = optim_of(RunConfig(optimizer_args={"eta": 0.001, "clip_lr": False}, warmup_start_lr=0.0))
    assert own["optimizer_args"]["eta"] == 0.001 and not own["optimizer_args"]["clip_lr"]
    assert own["optimizer_args"]["exclude_bias_n_norm"] and own["warmup_start_lr"] == 0.0


def test_optimizer_args_are_validated_against_the_optimiser_that_runs():
    with pytest.raises(ConfigError, match="optimizer_args key for sgd 'eta'"):
        RunConfig.from_dict({"optimizer": "sgd", "optimizer_args": {"eta": 0.1}})
    assert RunConfig.from_dict({"optimizer_args": {"eta": 0.1}}).run_id != RunConfig().run_id
