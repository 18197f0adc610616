"""SimCLR's NT-Xent against a slow loop over its formula (eq. 1), its invariants, and the false-negative mask."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.methods.simclr import nt_xent_loss

from .reference import TOL, D, N, cosine, rand, rows

pytestmark = pytest.mark.usefixtures("one_thread")


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
