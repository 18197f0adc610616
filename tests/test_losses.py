"""SSL losses against slow loop-based references of the published formulas, their invariants, and
every registered method end to end on a tiny backbone (CPU, well under a second each)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import small_method_args

from benchmark.backbones import SmallCNN
from benchmark.errors import ConfigError
from benchmark.methods import METHODS, MethodContext, build_method, resolve_method_params
from benchmark.methods.barlow import barlow_twins_loss
from benchmark.methods.byol import byol_loss
from benchmark.methods.dino import dino_loss
from benchmark.methods.mocov3 import mocov3_loss
from benchmark.methods.momentum import MomentumTarget, ema_momentum
from benchmark.methods.nnclr import nnclr_loss
from benchmark.methods.simclr import nt_xent_loss
from benchmark.methods.simsiam import simsiam_loss
from benchmark.methods.vicreg import vicreg_loss

N, D = 6, 5
TOL = dict(rel=1e-5, abs=1e-5)


pytestmark = pytest.mark.usefixtures("one_thread")


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------ scalar helpers for the references
def rows(z: torch.Tensor) -> list[list[float]]:
    return z.double().tolist()


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def cosine(a, b):
    return dot(a, b) / (math.sqrt(dot(a, a)) * math.sqrt(dot(b, b)))


# --------------------------------------------------------------------------- references
def ref_nt_xent(z1, z2, temperature):
    """SimCLR eq. (1), averaged over all 2N anchors: -log exp(s_ip/T) / sum_{k != i} exp(s_ik/T)."""
    z = rows(z1) + rows(z2)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        denominator = sum(math.exp(cosine(z[i], z[k]) / temperature) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(cosine(z[i], z[positive]) / temperature) / denominator)
    return total / (2 * n)


def ref_byol(p, z):
    """BYOL eq. (2): ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), averaged over the batch."""
    total = 0.0
    for a, b in zip(rows(p), rows(z)):
        na, nb = math.sqrt(dot(a, a)), math.sqrt(dot(b, b))
        total += sum((x / na - y / nb) ** 2 for x, y in zip(a, b))
    return total / len(p)


def ref_nnclr(nn1, p2, temperature):
    """NNCLR eq. (2): -log exp(NN(z_i).p_i/T) / sum_k exp(NN(z_i).p_k/T), cosine similarities."""
    a, b = rows(nn1), rows(p2)
    total = 0.0
    for i in range(len(a)):
        denominator = sum(math.exp(cosine(a[i], b[k]) / temperature) for k in range(len(b)))
        total += -math.log(math.exp(cosine(a[i], b[i]) / temperature) / denominator)
    return total / len(a)


def column_stats(z, unbiased):
    n, d = len(z), len(z[0])
    means = [sum(z[i][j] for i in range(n)) / n for j in range(d)]
    variances = [sum((z[i][j] - means[j]) ** 2 for i in range(n)) / (n - 1 if unbiased else n) for j in range(d)]
    return means, variances


def ref_vicreg(z1, z2, sim_w, var_w, cov_w, eps=1e-4, variance_reduction="sum"):
    """VICReg (Bardes et al. 2022): the invariance is the mean squared error over all N*D entries,
    each branch's hinge on the std is averaged over dimensions and the two branches added (solo-learn's
    solo/losses/vicreg.py; halved with "mean", as the VICReg authors' main_vicreg.py), the covariance
    term uses the (N-1)-normalised covariance, its squared off-diagonal entries summed and divided by D."""
    a, b = rows(z1), rows(z2)
    n, d = len(a), len(a[0])
    invariance = sum((a[i][j] - b[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
    variance = covariance = 0.0
    for z in (a, b):
        means, variances = column_stats(z, unbiased=True)
        variance += (
            sum(max(0.0, 1.0 - math.sqrt(v + eps)) for v in variances) / d / (2 if variance_reduction == "mean" else 1)
        )
        for j in range(d):
            for k in range(d):
                if j != k:
                    c = sum((z[i][j] - means[j]) * (z[i][k] - means[k]) for i in range(n)) / (n - 1)
                    covariance += c * c / d
    return sim_w * invariance + var_w * variance + cov_w * covariance


def ref_barlow(z1, z2, lambd, eps=1e-5):
    """Barlow Twins eq. (1)-(2): C_ij = sum_b z1n_bi z2n_bj / N over batch-standardised columns
    (biased variance, BatchNorm's eps); L = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2."""
    standardised = []
    for z in (rows(z1), rows(z2)):
        means, variances = column_stats(z, unbiased=False)
        standardised.append([[(x - m) / math.sqrt(v + eps) for x, m, v in zip(r, means, variances)] for r in z])
    a, b = standardised
    n, d = len(a), len(a[0])
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k][i] * b[k][j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lambd * c * c
    return loss


# ---------------------------------------------------------------------------- SimCLR
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_nt_xent_matches_reference(temperature, seed):
    z1, z2 = rand(N, D, seed=seed), rand(N, D, seed=seed + 100)
    got = nt_xent_loss(z1, z2, temperature)
    assert got.ndim == 0
    assert got.item() == pytest.approx(ref_nt_xent(z1, z2, temperature), **TOL)


def test_nt_xent_is_symmetric_and_scale_invariant():
    z1, z2 = rand(N, D, seed=2), rand(N, D, seed=3)
    loss = nt_xent_loss(z1, z2, 0.2).item()
    assert nt_xent_loss(z2, z1, 0.2).item() == pytest.approx(loss, **TOL)
    scale1 = torch.rand(N, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 10 + 0.1
    scale2 = torch.rand(N, 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 10 + 0.1
    assert nt_xent_loss(z1 * scale1, z2 * scale2, 0.2).item() == pytest.approx(loss, **TOL)
    # the loss sees the pairing: shuffling one view's rows changes it
    assert nt_xent_loss(z1, z2.roll(1, dims=0), 0.2).item() != pytest.approx(loss, **TOL)


def test_nt_xent_perfect_pairs_beat_random_pairs():
    z = rand(N, D, seed=6)
    assert nt_xent_loss(z, z, 0.1) < nt_xent_loss(z, rand(N, D, seed=7), 0.1)


# ------------------------------------------------------------------------------ BYOL
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_byol_loss_matches_reference(seed):
    p, z = rand(N, D, seed=seed), rand(N, D, seed=seed + 50)
    assert byol_loss(p, z).item() == pytest.approx(ref_byol(p, z), **TOL)


def test_byol_loss_extremes_and_scale_invariance():
    z = rand(N, D, seed=8)
    assert byol_loss(z, z).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(-z, z).item() == pytest.approx(4.0, abs=1e-6)
    assert byol_loss(3.0 * z, 0.5 * z).item() == pytest.approx(0.0, abs=1e-6)
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 5.0], [-1.0, 0.0]])
    assert byol_loss(*orthogonal).item() == pytest.approx(2.0, abs=1e-6)


def test_ema_momentum_schedule():
    assert ema_momentum(0.99, 1.0, 0) == pytest.approx(0.99, abs=1e-12)
    assert ema_momentum(0.99, 1.0, 1) == pytest.approx(1.0, abs=1e-12)
    assert ema_momentum(0.99, 1.0, 0.5) == pytest.approx(0.995, abs=1e-12)
    for progress in (0.1, 0.3, 0.7, 0.9):  # BYOL: 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2
        expected = 1 - (1 - 0.9) * (math.cos(math.pi * progress) + 1) / 2
        assert ema_momentum(0.9, 1.0, progress) == pytest.approx(expected, abs=1e-12)
    values = [ema_momentum(0.9, 1.0, k / 20) for k in range(21)]
    assert all(a < b for a, b in zip(values, values[1:]))


# ----------------------------------------------------------------------------- NNCLR
@pytest.mark.parametrize("temperature", [0.1, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_nnclr_loss_matches_reference(temperature, seed):
    nn1, p2 = rand(N, D, seed=seed), rand(N, D, seed=seed + 20)
    assert nnclr_loss(nn1, p2, temperature).item() == pytest.approx(ref_nnclr(nn1, p2, temperature), **TOL)


def test_nnclr_loss_is_not_symmetric_in_general_but_scale_invariant():
    nn1, p2 = rand(N, D, seed=9), rand(N, D, seed=10)
    loss = nnclr_loss(nn1, p2, 0.2).item()
    assert nnclr_loss(nn1 * 4.0, p2 * 0.25, 0.2).item() == pytest.approx(loss, **TOL)


# ---------------------------------------------------------------------------- VICReg
@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)])
@pytest.mark.parametrize("scale", [0.3, 2.0])  # 0.3: the variance hinge is active; 2.0: it is not
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_vicreg_loss_matches_reference(weights, scale, reduction):
    z1, z2 = scale * rand(N, D, seed=11), scale * rand(N, D, seed=12)
    got = vicreg_loss(z1, z2, *weights, variance_reduction=reduction).item()
    assert got == pytest.approx(ref_vicreg(z1, z2, *weights, variance_reduction=reduction), **TOL)


def test_vicreg_variance_reduction_defaults_to_solo_learns_sum():
    assert METHODS.get("vicreg").Params().variance_reduction == "sum"
    z1, z2 = 0.3 * rand(N, D, seed=11), 0.3 * rand(N, D, seed=12)
    summed, halved = (vicreg_loss(z1, z2, 0.0, 1.0, 0.0, variance_reduction=r).item() for r in ("sum", "mean"))
    assert summed == pytest.approx(2 * halved) and summed > 0
    with pytest.raises(ConfigError, match="unknown method_args.variance_reduction 'half'.*mean, sum"):
        resolve_method_params("vicreg", {"variance_reduction": "half"})


def test_vicreg_terms_vanish_where_the_paper_says():
    z = rand(16, D, seed=13)
    # invariance: 0 for identical views
    assert vicreg_loss(z, z, 1.0, 0.0, 0.0).item() == pytest.approx(0.0, abs=1e-7)
    assert vicreg_loss(z, z + 1.0, 1.0, 0.0, 0.0).item() == pytest.approx(1.0, abs=1e-6)
    # variance: 0 once every column's std is >= 1, positive below
    wide = z / z.std(dim=0) * 1.5
    assert (wide.std(dim=0) >= 1).all()
    assert vicreg_loss(wide, wide * 2, 0.0, 1.0, 0.0).item() == 0.0
    narrow = z / z.std(dim=0) * 0.5
    expected = 2 * (1 - math.sqrt(0.25 + 1e-4))  # same for each column and each branch; the branches add
    assert vicreg_loss(narrow, narrow, 0.0, 1.0, 0.0).item() == pytest.approx(expected, abs=1e-6)
    # covariance: 0 for decorrelated columns
    h = hadamard(8)[:, 1 : D + 1]
    assert vicreg_loss(h, h, 0.0, 0.0, 1.0).item() == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------------- Barlow Twins
@pytest.mark.parametrize("lambd", [0.0051, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_barlow_loss_matches_reference(lambd, seed):
    z1, z2 = rand(N, D, seed=seed) * 3 + 1, rand(N, D, seed=seed + 30)
    assert barlow_twins_loss(z1, z2, lambd).item() == pytest.approx(ref_barlow(z1, z2, lambd), **TOL)


def hadamard(n: int) -> torch.Tensor:
    """Sylvester's +-1 Hadamard matrix: orthogonal columns; every column but the first has mean 0."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while len(h) < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def test_barlow_loss_zero_for_identical_decorrelated_views_and_lambda_weighting():
    h = hadamard(8)[:, 1:]  # 8 x 7: zero-mean, unit (biased) variance, pairwise orthogonal columns
    assert barlow_twins_loss(h, h, 0.0051).item() == pytest.approx(0.0, abs=1e-6)
    # standardisation removes any per-column affine map with positive scale
    affine = h * torch.arange(1, 8, dtype=torch.float64) + 5.0
    assert barlow_twins_loss(affine, h, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    c = 1 / (1 + 1e-5)  # a unit-variance column standardised with BatchNorm's eps
    # swapping two columns of one view: C_00 = C_11 = 0, C_01 = C_10 = c -> 2 + 2 lambda c^2
    swapped = h[:, [1, 0, 2, 3, 4, 5, 6]]
    for lambd in (0.0, 0.0051, 0.5, 3.0):
        expected = 2 + 2 * lambd * c**2 + 5 * (1 - c) ** 2
        assert barlow_twins_loss(h, swapped, lambd).item() == pytest.approx(expected, rel=1e-6)
    # a negated column: C_00 = -c -> (1 + c)^2 ~ 4, independent of lambda
    negated = h.clone()
    negated[:, 0] *= -1
    expected = (1 + c) ** 2 + 6 * (1 - c) ** 2
    assert barlow_twins_loss(h, negated, 7.0).item() == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- SimSiam
def ref_simsiam(p1, z2, p2, z1):
    """SimSiam eq. (1)-(2): L = D(p1, z2) / 2 + D(p2, z1) / 2, D(p, z) = -(p/|p|).(z/|z|) averaged over the batch."""
    d = lambda p, z: -sum(cosine(a, b) for a, b in zip(rows(p), rows(z))) / len(p)  # noqa: E731
    return d(p1, z2) / 2 + d(p2, z1) / 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simsiam_loss_matches_reference(seed):
    p1, z2, p2, z1 = (rand(N, D, seed=seed + 10 * i) for i in range(4))
    got = simsiam_loss(p1, z2) / 2 + simsiam_loss(p2, z1) / 2
    assert got.item() == pytest.approx(ref_simsiam(p1, z2, p2, z1), **TOL)


def test_simsiam_stops_the_gradient_of_the_target_and_has_the_reference_heads():
    p, z = rand(N, D, seed=3).requires_grad_(), rand(N, D, seed=4).requires_grad_()
    simsiam_loss(p, z).backward()
    assert z.grad is None and p.grad.abs().sum() > 0
    assert simsiam_loss(z, z).item() == pytest.approx(-1.0) and simsiam_loss(-z, z).item() == pytest.approx(1.0)
    method = build("simsiam")
    kinds = [(type(m).__name__, getattr(m, "bias", 0) is not None) for m in method.projector]
    assert kinds == [
        ("Linear", False),
        ("BatchNorm1d", True),
        ("ReLU", True),
        ("Linear", False),
        ("BatchNorm1d", True),
        ("ReLU", True),
        ("Linear", False),
        ("BatchNorm1d", False),
    ]  # last BN without affine
    assert [type(m).__name__ for m in method.predictor] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert method.predictor[0].bias is None and method.predictor[-1].bias is not None
    assert not any(isinstance(m, MomentumTarget) for m in method.modules())  # no momentum encoder


# --------------------------------------------------------------------------- MoCo v3
def ref_mocov3(q, k, temperature):
    """MoCo v3 (Algorithm 1): 2T x mean_i -log exp(q_i.k_i/T) / sum_j exp(q_i.k_j/T), cosine similarities."""
    a, b = rows(q), rows(k)
    total = 0.0
    for i in range(len(a)):
        denominator = sum(math.exp(cosine(a[i], b[j]) / temperature) for j in range(len(b)))
        total += -math.log(math.exp(cosine(a[i], b[i]) / temperature) / denominator)
    return 2 * temperature * total / len(a)


@pytest.mark.parametrize("temperature", [0.2, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_mocov3_loss_matches_reference(temperature, seed):
    q, k = rand(N, D, seed=seed), rand(N, D, seed=seed + 40)
    assert mocov3_loss(q, k, temperature).item() == pytest.approx(ref_mocov3(q, k, temperature), **TOL)


def test_mocov3_keys_get_no_gradient_and_the_heads_follow_solo_learn():
    q, k = rand(N, D, seed=5).requires_grad_(), rand(N, D, seed=6).requires_grad_()
    mocov3_loss(q, k, 0.2).backward()
    assert k.grad is None and q.grad.abs().sum() > 0
    method = build("mocov3")
    assert [type(m).__name__ for m in method.projector] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert not method.projector[-1].affine and [type(m).__name__ for m in method.predictor] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
    ]
    assert all(m.bias is None for m in method.modules() if isinstance(m, torch.nn.Linear))
    assert isinstance(method.target, MomentumTarget) and method.params.tau_base == 0.99


# ------------------------------------------------------------------------------ DINO
def ref_dino(student, teacher, center, student_temperature, teacher_temperature):
    """DINO eq. (1) over the two global views: H(P_t(x_a), P_s(x_b)) for a != b, P_t = softmax((t - c) / T_t),
    P_s = softmax(s / T_s), H(q, p) = -sum_k q_k log p_k, averaged over rows and the two view pairs."""

    def softmax(row, temperature, shift):
        exps = [math.exp((x - c) / temperature) for x, c in zip(row, shift)]
        return [e / sum(exps) for e in exps]

    s, t, n = rows(student), rows(teacher), len(student) // 2
    zero = [0.0] * len(s[0])
    total = 0.0
    for i in range(n):
        for a, b in ((i, i + n), (i + n, i)):  # teacher on one view, student on the other
            q, p = softmax(t[a], teacher_temperature, center), softmax(s[b], student_temperature, zero)
            total += -sum(qk * math.log(pk) for qk, pk in zip(q, p))
    return total / (2 * n)


@pytest.mark.parametrize("temperatures", [(0.1, 0.07), (0.5, 0.04)])
@pytest.mark.parametrize("seed", [0, 1])
def test_dino_loss_matches_reference(temperatures, seed):
    student, teacher, center = rand(2 * N, D, seed=seed), rand(2 * N, D, seed=seed + 60), rand(D, seed=seed + 70)
    got = dino_loss(student, teacher, center, *temperatures).item()
    assert got == pytest.approx(ref_dino(student, teacher, center.tolist(), *temperatures), **TOL)


def test_dino_schedules_centre_and_frozen_prototypes():
    method = build("dino", warmup_teacher_temperature_epochs=3, num_train=50)
    method.epochs = 10
    assert [method.teacher_temperature_at(e) for e in (0, 1, 2, 3, 9)] == pytest.approx([0.04, 0.055, 0.07, 0.07, 0.07])
    assert METHODS.get("dino").Params().warmup_teacher_temperature_epochs == 0  # CIFAR: 0.07 from the start
    assert float(method.prototypes.frozen) == 1.0  # first epoch: the prototypes do not learn
    method.train()
    loss = method(*views())
    loss.backward()
    assert method.prototypes.weight.grad.abs().sum() == 0 and method.projector[0].weight.grad.abs().sum() > 0
    pending = method._pending.clone()
    method.after_step(0.1)  # now in epoch 1 of 10
    torch.testing.assert_close(method.center, 0.1 * pending)  # 0.9 * 0 + 0.1 * batch centre
    assert float(method.prototypes.frozen) == 0.0 and float(method.teacher_temperature) == pytest.approx(0.055)
    method.zero_grad()
    method(*views()).backward()
    assert method.prototypes.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------- methods end to end
def build(name: str, num_train: int = 50, **extra):
    torch.manual_seed(0)
    backbone = SmallCNN()
    overrides = small_method_args(name, 32, proj_output_dim=16, **extra)
    method = build_method(
        name, backbone, backbone.num_features, overrides, MethodContext(num_train=num_train, epochs=1)
    )
    return method


def views(seed: int = 0, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randn(n, 3, 8, 8, generator=g)


def test_the_paper_methods_are_registered_and_name_themselves():
    assert {"barlow", "byol", "nnclr", "simclr", "vicreg"} <= set(METHODS)
    from benchmark.results import method_names

    names = method_names()
    assert list(names)[:5] == ["simclr", "byol", "nnclr", "vicreg", "barlow"]  # the paper's column order
    assert names["barlow"] == "Barlow Twins" and set(names) == set(METHODS)
    orders = [METHODS.get(name).table_order for name in names]
    assert len(set(orders)) == len(orders), "two methods share a table_order"


@pytest.mark.parametrize("name", METHODS.names())
def test_method_end_to_end_loss_and_gradients(name):
    method = build(name)
    method.train()
    for value in (32, 16):
        assert any(getattr(method.params, f, None) == value for f in ("proj_hidden_dim", "proj_output_dim"))
    v1, v2 = views()
    loss = method(v1, v2)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for pname, param in method.backbone.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in method.backbone.parameters())
    assert all(p.grad is not None for p in method.projector.parameters() if p.requires_grad)
    for target in (m for m in method.modules() if isinstance(m, MomentumTarget)):
        assert all(p.grad is None and not p.requires_grad for p in target.parameters())
    method.after_step(0.5)  # must run after a step for every method
    assert torch.isfinite(method(v1, v2))


def test_byol_target_starts_as_online_copy_and_follows_ema():
    method = build("byol", tau_base=0.5)
    online = list(method.backbone.parameters()) + list(method.projector.parameters())
    target = list(method.target.parameters())
    assert len(online) == len(target)
    for o, t in zip(online, target):
        assert torch.equal(o, t) and o.data_ptr() != t.data_ptr()
    before = [t.detach().clone() for t in target]
    with torch.no_grad():  # move the online network by a known amount
        for i, o in enumerate(online):
            o.add_(1.0 + i)
    method.after_step(0.0)  # tau = tau_base = 0.5
    for i, (o, t, b) in enumerate(zip(online, target, before)):
        assert not torch.equal(t, b)
        torch.testing.assert_close(t, 0.5 * b + 0.5 * o, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(t, b + 0.5 * (1.0 + i), rtol=1e-6, atol=1e-6)
    # progress 0.5: tau = 1 - (1 - 0.5) * (cos(pi/2) + 1) / 2 = 0.75
    before = [t.detach().clone() for t in target]
    method.after_step(0.5)
    for o, t, b in zip(online, target, before):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * o, rtol=1e-6, atol=1e-6)
    # progress 1: tau = tau_final = 1, the target stays put
    before = [t.detach().clone() for t in target]
    method.after_step(1.0)
    for t, b in zip(target, before):
        torch.testing.assert_close(t, b, rtol=0, atol=1e-7)
    # BatchNorm statistics are copied from the online network
    method.train()
    method(*views())
    online_buffers = list(method.backbone.buffers()) + list(method.projector.buffers())
    method.after_step(0.2)
    for o, t in zip(online_buffers, method.target.buffers()):
        assert torch.equal(o, t)


@pytest.mark.parametrize(
    "name", [m for m in METHODS.names() if any(isinstance(x, MomentumTarget) for x in build(m).modules())]
)
def test_momentum_targets_start_as_copies_and_follow_the_shared_schedule(name):
    """BYOL, MoCo v3, DINO: one helper (benchmark/methods/momentum.py) with solo-learn's cosine tau."""
    method = build(name, tau_base=0.5)
    [target] = [m for m in method.modules() if isinstance(m, MomentumTarget)]
    online = [p for m in target._online for p in m.parameters()]
    assert len(online) == len(list(target.parameters()))
    for o, t in zip(online, target.parameters()):
        assert torch.equal(o, t) and o.data_ptr() != t.data_ptr()
    before = [t.detach().clone() for t in target.parameters()]
    with torch.no_grad():
        for o in online:
            o.add_(1.0)
    method.after_step(0.5)  # tau = 1 - (1 - 0.5) * (cos(pi / 2) + 1) / 2 = 0.75
    for o, t, b in zip(online, target.parameters(), before):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * o, rtol=1e-6, atol=1e-6)


def test_byol_target_gets_no_gradient_and_defaults_follow_the_paper():
    method = build("byol")
    assert method.params.tau_base == 0.99 and method.params.tau_final == 1.0
    assert not any(p.requires_grad for p in method.target.parameters())


def test_nnclr_queue_starts_as_random_unit_vectors_and_is_fifo():
    """solo-learn's queue: 65,536 random unit vectors (whatever the data size), then a FIFO of the
    first view's normalised projections."""
    method = build("nnclr", num_train=20, queue_size=METHODS.get("nnclr").Params().queue_size)
    assert method.queue.shape == (65536, 16) and int(method.queue_ptr) == 0
    torch.testing.assert_close(method.queue.norm(dim=1), torch.ones(65536))
    method = build("nnclr", num_train=20, queue_size=20)
    start = method.queue.clone()
    method.after_step(0.0)  # nothing pending: nothing happens
    assert torch.equal(method.queue, start)
    enqueued = []
    for step, ptr in enumerate([8, 16, 4, 12]):
        method(*views(seed=step))
        pending = method._pending.clone()
        assert torch.allclose(pending.norm(dim=1), torch.ones(8))
        method.after_step(step / 4)
        enqueued.append(pending)
        assert int(method.queue_ptr) == ptr
    # slot k holds the (k)th enqueued row modulo 20, newest overwriting oldest
    stream = torch.cat(enqueued)  # 32 rows pushed into 20 slots
    expected = torch.empty(20, 16)
    for k, row in enumerate(stream):
        expected[k % 20] = row
    assert torch.equal(method.queue, expected)


def test_nnclr_batch_larger_than_queue():
    method = build("nnclr", queue_size=5)
    method(*views())
    pending = method._pending.clone()
    method.after_step(0.0)
    # only the first 5 of the 8 rows fit; the pointer advances by what was written, back to slot 0
    assert int(method.queue_ptr) == 0 and torch.equal(method.queue, pending[:5])


def test_nnclr_nearest_is_the_most_similar_queue_entry():
    method = build("nnclr", queue_size=20)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    queue = F.normalize(torch.randn(20, 16, generator=torch.Generator().manual_seed(4)), dim=1)
    method.queue.copy_(queue)
    sims = [[cosine(a, b) for b in rows(queue)] for a in rows(z)]
    expected = torch.stack([queue[max(range(20), key=row.__getitem__)] for row in sims])
    assert torch.equal(method.nearest(z), expected)
    assert torch.equal(method.nearest(z * 7.0), expected)  # cosine: the scale of z does not matter


def test_heads_follow_solo_learn():
    """SimCLR's projector has no BatchNorm; NNCLR's projector ends in an affine BatchNorm; every
    Linear has a bias (solo/methods/<method>.py)."""
    simclr = build("simclr")
    assert [type(m).__name__ for m in simclr.projector] == ["Linear", "ReLU", "Linear"]
    nnclr = build("nnclr")
    assert [type(m).__name__ for m in nnclr.projector] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
    ]
    assert nnclr.projector[-1].affine
    for name in ("simclr", "byol", "nnclr", "vicreg", "barlow"):  # (SimSiam's and MoCo v3's drop some)
        assert all(m.bias is not None for m in build(name).modules() if isinstance(m, torch.nn.Linear)), name


@pytest.mark.parametrize("name", METHODS.names())
def test_batchnorm_statistics_per_view_or_joint(name):
    """bn_per_view (solo-learn's way, the default): the backbone runs once per view, so a view's
    features do not depend on the other view; joint: one pass over both, so they do."""
    v1, v2 = views(seed=5)
    other = views(seed=6)[1]
    for per_view in (True, False):
        method = build(name, bn_per_view=per_view)
        method.train()
        h1, _ = method.embed_pair(v1, v2)
        h1_other, _ = method.embed_pair(v1, other)
        assert torch.allclose(h1, h1_other) == per_view, (name, per_view)
    assert METHODS.get(name).Params().bn_per_view


# ---------------------------------------------------------------------------- params
def test_resolve_method_params_defaults_and_coercion():
    params = resolve_method_params("simclr", {})
    assert params == METHODS.get("simclr").Params()
    params = resolve_method_params("simclr", {"temperature": 1, "proj_output_dim": 64})
    assert params.temperature == 1.0 and isinstance(params.temperature, float)
    assert params.proj_output_dim == 64


def test_resolve_method_params_rejects_unknown_keys():
    with pytest.raises(ConfigError) as err:
        resolve_method_params("byol", {"tau_bsae": 0.9})
    message = str(err.value)
    assert "'tau_bsae'" in message and "byol" in message
    assert "did you mean 'tau_base'" in message
    for valid in ("pred_hidden_dim", "proj_hidden_dim", "proj_output_dim", "tau_base", "tau_final"):
        assert valid in message
    with pytest.raises(ConfigError, match="temperature"):  # valid for simclr, not for vicreg
        resolve_method_params("vicreg", {"temperature": 0.5})


@pytest.mark.parametrize(
    "method, overrides, fragment",
    [
        ("simclr", {"temperature": "hot"}, "method_args.temperature must be float, got 'hot'"),
        ("simclr", {"temperature": True}, "method_args.temperature must be float, got True"),
        ("simclr", {"proj_hidden_dim": 32.0}, "method_args.proj_hidden_dim must be int, got 32.0"),
        ("nnclr", {"queue_size": False}, "method_args.queue_size must be int, got False"),
        ("barlow", {"lambd": None}, "method_args.lambd must be float, got None"),
        ("vicreg", {"sim_weight": -1.0}, "method_args.sim_weight must be >= 0, got -1.0"),
    ],
)
def test_resolve_method_params_rejects_wrong_types_and_ranges(method, overrides, fragment):
    with pytest.raises(ConfigError) as err:
        resolve_method_params(method, overrides)
    assert fragment in str(err.value)


def test_build_method_rejects_unknown_method():
    with pytest.raises(ConfigError, match="unknown method 'simclrr'.*simclr"):
        build_method("simclrr", SmallCNN(), 256, {}, MethodContext(num_train=10, epochs=1))


def test_nt_xent_false_negative_mask_matches_a_loop():
    """With GPS a positive may also be an anchor of the batch: the other views of that image are
    dropped from the negatives of each view, and nothing else changes."""
    torch.manual_seed(3)
    z1, z2 = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    anchors = torch.tensor([10, 11, 12, 13])
    positives = torch.tensor([11, 20, 10, 21])  # row 0's positive is anchor 1, row 2's is anchor 0
    ids = torch.cat([anchors, positives]).tolist()
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    temperature, n, total = 0.5, 4, 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        keep = [j for j in range(2 * n) if j != i and (j == partner or ids[j] != ids[i])]
        logits = torch.stack([z[i] @ z[j] / temperature for j in keep])
        total += -(logits[keep.index(partner)] - torch.logsumexp(logits, 0))
    masked = nt_xent_loss(z1, z2, temperature, ids=(anchors, positives))
    assert masked.item() == pytest.approx(total.item() / (2 * n), rel=1e-6)
    plain_ids = (anchors, anchors)  # plain SSL: nothing to mask
    assert nt_xent_loss(z1, z2, temperature, ids=plain_ids).item() == pytest.approx(
        nt_xent_loss(z1, z2, temperature).item(), rel=1e-6
    )
    assert masked.item() != pytest.approx(nt_xent_loss(z1, z2, temperature).item(), rel=1e-3)
