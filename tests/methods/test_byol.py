"""BYOL's loss against its formula (eq. 2), and its momentum target."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.methods.byol import byol_loss

from .reference import TOL, D, N, build, dot, rand, rows, views

pytestmark = pytest.mark.usefixtures("one_thread")


def ref_byol(p, z):
    """BYOL eq. (2): ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), averaged over the batch."""
    total = 0.0
    for a, b in zip(rows(p), rows(z)):
        na, nb = math.sqrt(dot(a, a)), math.sqrt(dot(b, b))
        total += sum((x / na - y / nb) ** 2 for x, y in zip(a, b))
    return total / len(p)


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


def test_byol_target_gets_no_gradient_and_defaults_follow_the_paper():
    method = build("byol")
    assert method.params.tau_base == 0.99 and method.params.tau_final == 1.0
    assert not any(p.requires_grad for p in method.target.parameters())
