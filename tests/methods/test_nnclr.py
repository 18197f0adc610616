"""NNCLR's loss against its formula (eq. 2), its support queue and nearest-neighbour lookup."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchmark.methods import METHODS
from benchmark.methods.nnclr import nnclr_loss

from .reference import TOL, D, N, build, cosine, rand, rows, views

pytestmark = pytest.mark.usefixtures("one_thread")


def ref_nnclr(nn1, p2, temperature):
    """NNCLR eq. (2): -log exp(NN(z_i).p_i/T) / sum_k exp(NN(z_i).p_k/T), cosine similarities."""
    a, b = rows(nn1), rows(p2)
    total = 0.0
    for i in range(len(a)):
        denominator = sum(math.exp(cosine(a[i], b[k]) / temperature) for k in range(len(b)))
        total += -math.log(math.exp(cosine(a[i], b[i]) / temperature) / denominator)
    return total / len(a)


@pytest.mark.parametrize("temperature", [0.1, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_nnclr_loss_matches_reference(temperature, seed):
    nn1, p2 = rand(N, D, seed=seed), rand(N, D, seed=seed + 20)
    assert nnclr_loss(nn1, p2, temperature).item() == pytest.approx(ref_nnclr(nn1, p2, temperature), **TOL)


def test_nnclr_loss_is_not_symmetric_in_general_but_scale_invariant():
    nn1, p2 = rand(N, D, seed=9), rand(N, D, seed=10)
    loss = nnclr_loss(nn1, p2, 0.2).item()
    assert nnclr_loss(nn1 * 4.0, p2 * 0.25, 0.2).item() == pytest.approx(loss, **TOL)


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
