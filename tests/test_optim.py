"""Optimisers and schedule: LARS against a hand-written per-tensor step, parameter groups, the
recipe's linear lr scaling, and the warm-up + cosine schedule."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn

from benchmark.config import RunConfig
from benchmark.methods import METHODS
from benchmark.optim import LARS, OPTIMIZERS, build_optimizer, lr_at, param_groups, resolve_optim, set_lr


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ schedule
def test_lr_warms_up_linearly_then_decays_by_cosine():
    base, total, warmup = 0.8, 100, 10
    lrs = [lr_at(step, total, warmup, base) for step in range(total + 1)]
    assert lrs[0] == pytest.approx(base / warmup)
    for step in range(warmup):
        assert lrs[step] == pytest.approx(base * (step + 1) / warmup)
    assert lrs[warmup - 1] == pytest.approx(base)
    assert lrs[warmup] == pytest.approx(base)
    assert lrs[total] == pytest.approx(0.0, abs=1e-12)
    assert lrs[total - 1] < 1e-3 * base
    assert all(a < b for a, b in zip(lrs[:warmup], lrs[1:warmup]))
    assert all(a > b for a, b in zip(lrs[warmup:], lrs[warmup + 1 :]))
    assert lrs[55] == pytest.approx(base / 2)  # half way through the cosine
    for step in (20, 37, 80):
        assert lrs[step] == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))))
    assert lr_at(500, total, warmup, base) == pytest.approx(0.0, abs=1e-12)  # clamped past the end


def test_lr_without_warmup_and_degenerate_spans():
    assert lr_at(0, 50, 0, 0.3) == pytest.approx(0.3)
    assert lr_at(25, 50, 0, 0.3) == pytest.approx(0.15)
    assert lr_at(0, 5, 5, 1.0) == pytest.approx(0.2)
    assert lr_at(5, 5, 5, 1.0) == pytest.approx(1.0)  # no division by a zero-length cosine
    assert lr_at(0, 1, 0, 1.0) == pytest.approx(1.0)


def test_set_lr_sets_every_group():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    optimizer = build_optimizer("lars", model, lr=1.0, weight_decay=0.1)
    set_lr(optimizer, 0.25)
    assert [g["lr"] for g in optimizer.param_groups] == [0.25, 0.25]


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
    assert ids(plain["params"]) == ids([model.bn.weight, model.bn.bias, model.fc.bias, model.norm.weight,
                                         model.norm.bias])
    assert not ids([model.frozen.weight, model.frozen.bias]) & (ids(decay["params"]) | ids(plain["params"]))


@pytest.mark.parametrize("name, cls", [("lars", LARS), ("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
def test_build_optimizer(name, cls):
    model = Tiny()
    optimizer = build_optimizer(name, model, lr=0.3, weight_decay=0.01)
    assert type(optimizer) is cls
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]
    assert all(g["lr"] == 0.3 for g in optimizer.param_groups)
    assert ("lars" in optimizer.param_groups[0]) == (name == "lars")
    if name == "sgd":
        assert optimizer.param_groups[0]["momentum"] == 0.9
    assert OPTIMIZERS.names() == ["adamw", "lars", "sgd"]


# ------------------------------------------------------------------------------ LARS
def norm(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


def reference_lars_step(groups, state, lr, momentum=0.9, eta=0.02):
    """You et al. (2017) as used by SimCLR/BYOL, one tensor at a time with Python scalars for the
    norms: g <- g + wd w; in a LARS group g <- g * eta ||w|| / (||g_raw|| + wd ||w||) (1 when either
    norm is 0); v <- momentum v + g; w <- w - lr v."""
    for group in groups:
        wd = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            w_flat, g_flat = p.detach().flatten().tolist(), p.grad.flatten().tolist()
            w_norm, g_norm = norm(w_flat), norm(g_flat)
            if group["lars"] and w_norm > 0 and g_norm > 0:
                trust = eta * w_norm / (g_norm + wd * w_norm)
            else:
                trust = 1.0
            update = [(g + wd * w) * trust for g, w in zip(g_flat, w_flat)]
            buffer = state.setdefault(id(p), [0.0] * len(update))
            for k, u in enumerate(update):
                buffer[k] = momentum * buffer[k] + u
            new = [w - lr * v for w, v in zip(w_flat, buffer)]
            with torch.no_grad():
                p.copy_(torch.tensor(new, dtype=p.dtype).view_as(p))


class Mlp(nn.Module):
    """Linear-BN-ReLU-Linear: two LARS weights, three plain-SGD vectors (BN affine, bias)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2, 0.5])
def test_lars_matches_reference_for_three_steps(weight_decay):
    torch.manual_seed(0)
    model = Mlp().double()
    with torch.no_grad():
        model.bn.weight.mul_(1.5).add_(0.1)
        model.fc2.weight[0].zero_()  # a zero row keeps ||w|| > 0; LARS still applies per tensor
    reference = copy.deepcopy(model)
    start = copy.deepcopy(model)
    x = torch.randn(16, 4, dtype=torch.float64)
    target = torch.randn(16, 3, dtype=torch.float64)
    lr = 0.5
    optimizer = LARS(param_groups(model, weight_decay), lr=lr)
    ref_groups, ref_state = param_groups(reference, weight_decay), {}
    for step in range(3):
        for net in (model, reference):
            net.zero_grad(set_to_none=True)
            (net(x + 0.1 * step) - target).pow(2).mean().backward()
        for p in model.parameters():  # gradients well above rounding noise: the comparison is meaningful
            assert p.grad.norm() > 1e-4
        optimizer.step()
        reference_lars_step(ref_groups, ref_state, lr)
        for (name, p), q in zip(model.named_parameters(), reference.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12, msg=lambda m: f"step {step}: {name}: {m}")
    # the weights really moved, the LARS ones by trust-ratio-sized steps (eta = 0.02), far less than plain SGD
    moved = {name: (p - q).norm() / q.norm() for (name, p), q in zip(model.named_parameters(), start.parameters())}
    assert all(m > 0 for m in moved.values())
    assert moved["fc1.weight"] < 0.2 and moved["fc2.weight"] < 0.2


def test_lars_trust_ratio_on_a_single_tensor():
    w = nn.Parameter(torch.tensor([[3.0, 4.0]], dtype=torch.float64))  # ||w|| = 5
    optimizer = LARS([{"params": [w], "weight_decay": 0.1, "lars": True}], lr=1.0, momentum=0.9, eta=0.02)
    w.grad = torch.tensor([[0.0, 2.0]], dtype=torch.float64)  # ||g|| = 2
    optimizer.step()
    trust = 0.02 * 5 / (2 + 0.1 * 5)
    step1 = (torch.tensor([[0.0, 2.0]], dtype=torch.float64) + 0.1 * torch.tensor([[3.0, 4.0]], dtype=torch.float64)) * trust
    expected = torch.tensor([[3.0, 4.0]], dtype=torch.float64) - step1
    torch.testing.assert_close(w.detach(), expected, rtol=1e-12, atol=1e-12)
    # second step: momentum carries 0.9 of the first update
    w_before = w.detach().clone()
    w.grad = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    optimizer.step()
    trust2 = 0.02 * w_before.norm() / (1.0 + 0.1 * w_before.norm())
    update2 = (w.grad + 0.1 * w_before) * trust2
    torch.testing.assert_close(w.detach(), w_before - (0.9 * step1 + update2), rtol=1e-12, atol=1e-12)


def test_lars_zero_weight_or_zero_grad_uses_trust_one():
    w = nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
    optimizer = LARS([{"params": [w], "weight_decay": 0.1, "lars": True}], lr=0.5)
    w.grad = torch.ones(2, 2, dtype=torch.float64)
    optimizer.step()
    torch.testing.assert_close(w.detach(), torch.full((2, 2), -0.5, dtype=torch.float64))
    v = nn.Parameter(torch.ones(2, 2, dtype=torch.float64))
    optimizer = LARS([{"params": [v], "weight_decay": 0.1, "lars": True}], lr=0.5)
    v.grad = torch.zeros(2, 2, dtype=torch.float64)
    optimizer.step()  # g = 0, trust 1: only the decay acts
    torch.testing.assert_close(v.detach(), torch.full((2, 2), 1 - 0.5 * 0.1, dtype=torch.float64))


def test_lars_plain_group_is_momentum_sgd():
    torch.manual_seed(1)
    params = [nn.Parameter(torch.randn(4, dtype=torch.float64)), nn.Parameter(torch.randn(3, dtype=torch.float64))]
    twins = [nn.Parameter(p.detach().clone()) for p in params]
    lars = LARS([{"params": params, "weight_decay": 0.0, "lars": False}], lr=0.1)
    sgd = torch.optim.SGD(twins, lr=0.1, momentum=0.9)
    for step in range(3):
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
    resolved = resolve_optim(RunConfig(method=method, batch_size=batch_size))
    assert resolved["lr"] == pytest.approx(recipe.lr * batch_size / 256)
    assert resolved["optimizer"] == recipe.optimizer
    assert resolved["weight_decay"] == recipe.weight_decay


def test_resolve_optim_keeps_explicit_values_and_derives_warmup():
    config = RunConfig(method="byol", batch_size=512, lr=0.05, optimizer="sgd", weight_decay=0.0, warmup_epochs=3)
    assert resolve_optim(config) == {"optimizer": "sgd", "lr": 0.05, "weight_decay": 0.0, "warmup_epochs": 3}
    assert resolve_optim(RunConfig(method="byol", batch_size=512))["lr"] == pytest.approx(2.0)
    assert resolve_optim(RunConfig(method="simclr", batch_size=128))["lr"] == pytest.approx(0.2)
    assert resolve_optim(RunConfig(method="simclr", lr=0.0))["lr"] == 0.0  # 0 is set, not unset
    for epochs, warmup in ((100, 10), (400, 10), (30, 3), (5, 0)):
        assert resolve_optim(RunConfig(epochs=epochs))["warmup_epochs"] == warmup
    from_dict = RunConfig.from_dict({"method": "vicreg", "batch_size": 1024})
    assert resolve_optim(from_dict)["lr"] == pytest.approx(0.3 * 4)
