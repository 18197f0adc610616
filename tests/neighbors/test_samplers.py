"""The pair samplers (benchmark/neighbors/samplers.py): each rule's draws against the distribution it promises."""

from __future__ import annotations

import pytest
import torch

from benchmark.neighbors import (
    SAMPLING_RULES,
    BallSampler,
    FixedSampler,
    IdentitySampler,
    KnnUniformSampler,
    SameClassSampler,
)
from tests.neighbors.draws import DRAWS, TOL, frequencies, gen

pytestmark = pytest.mark.usefixtures("one_thread")


# ========================================================================= samplers
N_ROWS, K_COLS = 8, 6


# row i lists i+1, i+2, ... (mod 8): never i itself, all distinct
TABLE = torch.tensor([[(i + j) % N_ROWS for j in range(1, K_COLS + 1)] for i in range(N_ROWS)])


def test_knn_uniform_draws_uniformly_among_the_first_k():
    k = 4
    sampler = SAMPLING_RULES.get("knn-uniform").build(TABLE, torch.zeros(N_ROWS, K_COLS), k, 0.0, False)
    assert isinstance(sampler, KnnUniformSampler)
    anchors = torch.full((DRAWS,), 3, dtype=torch.long)
    drawn = sampler(anchors, gen(0))
    assert drawn.shape == anchors.shape and drawn.dtype == torch.long
    freq = frequencies(drawn, TABLE[3, :k])
    assert sum(freq.values()) == 1.0  # only the first k columns
    for f in freq.values():
        assert abs(f - 1 / k) < TOL
    # a batch of many anchors: each positive is one of its own anchor's first k neighbours, never itself
    anchors = torch.randint(0, N_ROWS, (DRAWS,), generator=gen(1))
    drawn = sampler(anchors, gen(2))
    assert ((TABLE[anchors, :k] == drawn[:, None]).any(dim=1)).all()
    assert (drawn != anchors).all()
    # deterministic given the seed, different with another
    assert torch.equal(sampler(anchors, gen(7)), sampler(anchors, gen(7)))
    assert not torch.equal(sampler(anchors, gen(7)), sampler(anchors, gen(8)))


def test_knn_uniform_with_include_self():
    k = 4
    sampler = KnnUniformSampler(TABLE, k, include_self=True)
    drawn = sampler(torch.full((DRAWS,), 5, dtype=torch.long), gen(0))
    freq = frequencies(drawn, [5, *TABLE[5, :k].tolist()])
    assert sum(freq.values()) == pytest.approx(1.0)
    for f in freq.values():
        assert abs(f - 1 / (k + 1)) < TOL
    anchors = torch.randint(0, N_ROWS, (DRAWS,), generator=gen(1))
    drawn = sampler(anchors, gen(2))
    allowed = torch.cat([TABLE[anchors, :k], anchors[:, None]], dim=1)
    assert (allowed == drawn[:, None]).any(dim=1).all()
    assert abs(float((drawn == anchors).float().mean()) - 1 / (k + 1)) < TOL
    # k = 1: the nearest, or (with include_self) the nearest and the anchor half each
    assert torch.equal(KnnUniformSampler(TABLE, 1)(anchors, gen(3)), TABLE[anchors, 0])
    halves = KnnUniformSampler(TABLE, 1, include_self=True)(anchors, gen(3))
    assert abs(float((halves == anchors).float().mean()) - 0.5) < TOL


# distances: row 0 has 3 within tau = 0.5 (the third exactly at tau), row 1 none, row 2 all of its first k
DIST = torch.tensor(
    [
        [0.1, 0.2, 0.5, 0.9, 1.5, 2.0],
        [0.7, 0.8, 0.9, 1.0, 1.1, 1.2],
        [0.1, 0.1, 0.2, 0.3, 0.4, 0.45],
        [0.0, 0.6, 0.6, 0.6, 0.7, 0.8],
    ]
    + [[0.1 * (j + 1) for j in range(K_COLS)]] * (N_ROWS - 4)
)


TAU, K_BALL = 0.5, 4


def test_radius_sampler_draws_uniformly_inside_the_ball():
    sampler = SAMPLING_RULES.get("radius").build(TABLE, DIST, K_BALL, TAU, False)
    assert isinstance(sampler, BallSampler)
    expected = {0: TABLE[0, :3].tolist(), 1: [1], 2: TABLE[2, :4].tolist(), 3: TABLE[3, :1].tolist()}
    for anchor, candidates in expected.items():
        drawn = sampler(torch.full((DRAWS,), anchor, dtype=torch.long), gen(anchor))
        assert drawn.shape == (DRAWS,) and drawn.dtype == torch.long
        freq = frequencies(drawn, candidates)
        assert sum(freq.values()) == pytest.approx(1.0), (anchor, freq)
        for f in freq.values():
            assert abs(f - 1 / len(candidates)) < TOL, (anchor, freq)
    # a mixed batch: every positive is in its anchor's ball, or the anchor when the ball is empty
    anchors = torch.randint(0, N_ROWS, (DRAWS,), generator=gen(9))
    drawn = sampler(anchors, gen(10))
    inside = (DIST[anchors, :K_BALL] <= TAU) & (TABLE[anchors, :K_BALL] == drawn[:, None])
    assert torch.where(anchors == 1, drawn == 1, inside.any(dim=1)).all()
    assert torch.equal(sampler(anchors, gen(11)), sampler(anchors, gen(11)))
    assert not torch.equal(sampler(anchors, gen(11)), sampler(anchors, gen(12)))


def test_radius_sampler_with_include_self():
    sampler = SAMPLING_RULES.get("radius").build(TABLE, DIST, K_BALL, TAU, True)
    expected = {0: [0, *TABLE[0, :3].tolist()], 1: [1], 2: [2, *TABLE[2, :4].tolist()], 3: [3, TABLE[3, 0].item()]}
    for anchor, candidates in expected.items():
        drawn = sampler(torch.full((DRAWS,), anchor, dtype=torch.long), gen(anchor))
        freq = frequencies(drawn, candidates)
        assert sum(freq.values()) == pytest.approx(1.0), (anchor, freq)
        for f in freq.values():
            assert abs(f - 1 / len(candidates)) < TOL, (anchor, freq)
    # the constructor directly, with a mask that is not a prefix
    within = torch.tensor([[False, True, False, True]] * N_ROWS)
    direct = BallSampler(TABLE[:, :4], within)
    drawn = direct(torch.zeros(DRAWS, dtype=torch.long), gen(4))
    freq = frequencies(drawn, [TABLE[0, 1].item(), TABLE[0, 3].item()])
    assert sum(freq.values()) == pytest.approx(1.0) and all(abs(f - 0.5) < TOL for f in freq.values())


def test_farthest_in_ball_is_the_farthest_neighbour_within_tau():
    for include_self in (False, True):
        sampler = SAMPLING_RULES.get("farthest-in-ball").build(TABLE, DIST, K_BALL, TAU, include_self)
        assert isinstance(sampler, FixedSampler)
        anchors = torch.arange(N_ROWS).repeat(3)
        drawn = sampler(anchors, gen(0))
        assert drawn.dtype == torch.long and drawn.shape == anchors.shape
        # row 0: column 2 (exactly at tau); row 1: none -> itself; row 2: column k-1 (not the 6th,
        # although it is within tau); row 3: column 0; rows 4..: 0.1..0.5 -> column 4 is beyond k, so column 3
        expected = torch.tensor([TABLE[0, 2], 1, TABLE[2, 3], TABLE[3, 0]] + [TABLE[r, 3] for r in range(4, N_ROWS)])
        assert torch.equal(drawn, expected.repeat(3))
        assert torch.equal(sampler(anchors, gen(1)), drawn)
    tiny = SAMPLING_RULES.get("farthest-in-ball").build(TABLE, DIST, K_BALL, 0.01, False)
    assert torch.equal(tiny(torch.arange(N_ROWS), gen(0)), torch.tensor([0, 1, 2, TABLE[3, 0], 4, 5, 6, 7]))


LABELS = torch.tensor([0, 1, 0, 4, 1, 0, 2, 0, 1, 4, 2])  # class 0: 4, 1: 3, 2: 2, 3: none, 4: 2


def test_same_class_sampler():
    sampler = SameClassSampler(LABELS)
    members = {c: torch.nonzero(LABELS == c).flatten().tolist() for c in range(5)}
    for anchor in range(len(LABELS)):
        others = [m for m in members[int(LABELS[anchor])] if m != anchor]
        drawn = sampler(torch.full((DRAWS,), anchor, dtype=torch.long), gen(anchor))
        assert drawn.dtype == torch.long and drawn.shape == (DRAWS,)
        freq = frequencies(drawn, others)
        assert sum(freq.values()) == pytest.approx(1.0), (anchor, freq)
        for f in freq.values():
            assert abs(f - 1 / len(others)) < TOL, (anchor, freq)
    anchors = torch.randint(0, len(LABELS), (DRAWS,), generator=gen(1))
    drawn = sampler(anchors, gen(2))
    assert (LABELS[drawn] == LABELS[anchors]).all() and (drawn != anchors).all()
    assert torch.equal(sampler(anchors, gen(3)), sampler(anchors, gen(3)))
    assert not torch.equal(sampler(anchors, gen(3)), sampler(anchors, gen(4)))
    # a singleton class: the anchor itself
    singleton = SameClassSampler(torch.tensor([0, 0, 1, 0, 2, 2]))
    assert (singleton(torch.full((100,), 2, dtype=torch.long), gen(0)) == 2).all()
    out = singleton(torch.tensor([0, 2, 4, 5, 2]), gen(0))
    assert out[1] == 2 and out[4] == 2 and out[2] == 5 and out[3] == 4 and out[0] in (1, 3)


def test_identity_sampler():
    anchors = torch.tensor([4, 0, 7, 7, 2])
    assert torch.equal(IdentitySampler()(anchors, gen(0)), anchors)
