"""Several positives per image (`positives: m`, benchmark/positives.py): draws, losses, the m = 1 path
and run_id, on real digits with real methods."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchmark.assembly import PairStep, build_parts
from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.methods import METHODS
from benchmark.methods.simclr import multi_positive_nt_xent, nt_xent_loss
from benchmark.neighbors import BallSampler, IdentitySampler, KnnUniformSampler, distinct_columns
from benchmark.positives import draw_positives
from tests.conftest import small_method_args


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"))


def parts_of(digits, tmp_path, **values):
    base = {"dataset": "digits", "backbone": "small", "batch_size": 64, "epochs": 2, "progress": False}
    method = values.get("method", "simclr")
    args = small_method_args(method, 128, proj_output_dim=32, queue_size=512)
    config = RunConfig.from_dict({**base, "method_args": args, "data_dir": str(tmp_path), **values})
    return build_parts(config, digits, torch.device("cpu"), results_dir=tmp_path)


# ------------------------------------------------------------------------------------- identity
def test_positives_one_keeps_every_run_id_and_other_values_change_it():
    for values, pinned in (({}, "4296fc400276"), ({"prior": "pixel", "k": 5}, "636111ef6ec5")):
        assert RunConfig.from_dict({**values, "positives": 1}).run_id == pinned
        assert RunConfig.from_dict({**values, "positives": 2}).run_id != pinned
    assert RunConfig.from_dict({"positives": 2}).run_id != RunConfig.from_dict({"positives": 3}).run_id


def test_bad_positives_are_refused_naming_the_valid_range():
    with pytest.raises(ConfigError, match="positives must be >= 1"):
        RunConfig.from_dict({"positives": 0})
    with pytest.raises(ConfigError, match=r"positives=6 .* among the 5 candidates .* valid: positives from 1 to 5"):
        RunConfig.from_dict({"prior": "pixel", "k": 5, "positives": 6})
    # include_self adds a candidate; a rule that draws with replacement takes any m; plain SSL takes any m
    assert RunConfig.from_dict({"prior": "pixel", "k": 5, "positives": 6, "include_self": True}).positives == 6
    assert RunConfig.from_dict({"prior": "pixel", "k": 2, "positives": 4, "sampling": "radius"}).positives == 4
    assert RunConfig.from_dict({"positives": 8}).positives == 8


# -------------------------------------------------------------------------------------- draws
def test_distinct_draws_are_m_different_candidates_of_the_anchor_and_cover_them_all():
    generator = torch.Generator().manual_seed(0)
    table = torch.randint(0, 1000, (50, 8), generator=generator)
    table[:, :6] = torch.arange(6) * 50 + torch.arange(50)[:, None] + 1000  # six different neighbours per row
    sampler = KnnUniformSampler(table, k=6)
    anchors = torch.arange(50).repeat(40)
    drawn = draw_positives(sampler, anchors, generator, 4).view(4, -1).T  # (B, m)
    candidates = table[anchors, :6]
    assert all(set(row.tolist()) <= set(c.tolist()) for row, c in zip(drawn, candidates))  # the k nearest only
    assert all(len(set(row.tolist())) == 4 for row in drawn)  # without replacement
    assert set(drawn[anchors == 3].flatten().tolist()) == set(table[3, :6].tolist())  # every candidate drawn
    with_self = KnnUniformSampler(table, k=3, include_self=True)
    drawn = draw_positives(with_self, anchors, generator, 4).view(4, -1).T
    assert all(set(row.tolist()) == set(table[a, :3].tolist()) | {int(a)} for a, row in zip(anchors, drawn))


def test_distinct_columns_are_uniform_over_subsets():
    columns = distinct_columns(20000, 4, 2, torch.Generator().manual_seed(1), "cpu")
    pairs = torch.sort(columns, dim=1).values
    counts = torch.unique(pairs[:, 0] * 4 + pairs[:, 1], return_counts=True)[1]
    assert len(counts) == 6 and (counts.float() / 20000 - 1 / 6).abs().max() < 0.02


def test_other_rules_draw_m_independent_positives_from_their_candidates():
    generator = torch.Generator().manual_seed(2)
    anchors = torch.arange(10)
    assert torch.equal(draw_positives(IdentitySampler(), anchors, generator, 3), anchors.repeat(3))
    table = torch.arange(10)[:, None] * 10 + torch.arange(5) + 100
    within = torch.arange(5).expand(10, 5) < 2  # two neighbours within the radius
    drawn = draw_positives(BallSampler(table, within), anchors.repeat(50), generator, 3).view(3, -1)
    assert set((drawn - anchors.repeat(50) * 10 - 100).flatten().tolist()) == {0, 1}
    assert (drawn[0] == drawn[1]).any()  # with replacement: the same neighbour twice happens


def test_one_positive_is_the_sampler_draw_itself():
    table = torch.randint(0, 100, (100, 5), generator=torch.Generator().manual_seed(3))
    sampler = KnnUniformSampler(table, k=5)
    one = draw_positives(sampler, torch.arange(100), torch.Generator().manual_seed(4), 1)
    assert torch.equal(one, sampler(torch.arange(100), torch.Generator().manual_seed(4)))


# ------------------------------------------------------------------------------------- losses
def slow_multi_positive_nt_xent(views: list[torch.Tensor], temperature: float, ids=None) -> float:
    """The formula of multi_positive_nt_xent, one view and one positive at a time."""
    z = [F.normalize(v.double(), dim=1) for v in views]
    n = len(views[0])
    flat = [(j, i) for j in range(len(z)) for i in range(n)]
    image = None if ids is None else [int(ids[j][i]) for j, i in flat]
    total = 0.0
    for a, (ja, ia) in enumerate(flat):
        positives = [b for b, (_, ib) in enumerate(flat) if ib == ia and b != a]
        others = [
            b
            for b in range(len(flat))
            if b != a and (image is None or b in positives or image[b] != image[a])  # same image elsewhere: out
        ]
        sim = {b: float(z[ja][ia] @ z[flat[b][0]][flat[b][1]]) / temperature for b in others}
        log_denominator = math.log(sum(math.exp(s) for s in sim.values()))
        total += -sum(sim[p] - log_denominator for p in positives) / len(positives)
    return total / len(flat)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_multi_positive_nt_xent_matches_its_formula(m):
    generator = torch.Generator().manual_seed(m)
    views = [torch.randn(6, 5, generator=generator) for _ in range(m + 1)]
    assert float(multi_positive_nt_xent(views, 0.3)) == pytest.approx(slow_multi_positive_nt_xent(views, 0.3), rel=1e-5)
    ids = [torch.tensor([0, 1, 2, 3, 4, 5])] + [torch.tensor([1, 0, 2, 7, 8, 9])] * m  # positives shared with anchors
    assert float(multi_positive_nt_xent(views, 0.3, ids)) == pytest.approx(
        slow_multi_positive_nt_xent(views, 0.3, ids), rel=1e-5
    )
    if m == 1:  # one positive: NT-Xent, with and without the false-negative mask
        assert float(multi_positive_nt_xent(views, 0.3)) == pytest.approx(float(nt_xent_loss(*views, 0.3)), rel=1e-6)
        assert float(multi_positive_nt_xent(views, 0.3, ids)) == pytest.approx(
            float(nt_xent_loss(*views, 0.3, tuple(ids))), rel=1e-6
        )


@pytest.mark.parametrize("method", ["byol", "vicreg"])
def test_the_default_rule_is_the_mean_of_the_pair_losses(method, digits, tmp_path):
    parts = parts_of(digits, tmp_path, method=method, aug="strong", prior="pixel", k=5, positives=3)
    step = PairStep(parts)
    v1, v2, _ = step.views(torch.arange(64))
    with torch.no_grad():
        together = float(parts.method.multi_positive_loss(v1, list(v2.chunk(3))))
        one_by_one = [float(parts.method(v1, v)) for v in v2.chunk(3)]
    assert together == pytest.approx(sum(one_by_one) / 3, rel=1e-6)
    assert len({round(x, 6) for x in one_by_one}) == 3  # three different pairs, not one counted thrice


# ----------------------------------------------------------------------------- the training step
@pytest.mark.parametrize("method, aug", [("simclr", "weak"), ("byol", "strong")])
def test_one_positive_steps_exactly_as_the_pair_step_did(method, aug, digits, tmp_path):
    """positives: 1 (the default) takes the pair path of every earlier run: same draws, same views, same loss."""
    values = {"method": method, "aug": aug, "prior": "pixel", "k": 5}
    if method == "simclr":
        values["method_args"] = {**small_method_args("simclr", 128, proj_output_dim=32), "mask_false_negatives": True}
    parts = parts_of(digits, tmp_path, **values)
    anchors = torch.arange(64)
    state, order = parts.generator.get_state(), parts.augment.order_rng.getstate()
    step = PairStep(parts)
    v1, v2, positives = step.views(anchors)
    with torch.no_grad():
        loss = step.loss(v1, v2, anchors, positives)
    parts.generator.set_state(state)
    parts.augment.order_rng.setstate(order)
    # the step as it was written before `positives` existed
    before_positives = parts.gps.sampler(anchors, parts.generator)
    before_v1, before_v2 = parts.augment(parts.images[torch.cat([anchors, before_positives])], parts.generator).chunk(2)
    extra = {"ids": (anchors, before_positives)} if parts.method.uses_pair_ids else {}
    with torch.no_grad():
        before = parts.method(before_v1, before_v2, **extra)
    assert torch.equal(positives, before_positives) and torch.equal(v1, before_v1) and torch.equal(v2, before_v2)
    assert torch.equal(loss, before)


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_takes_two_positives_with_a_finite_loss_and_gradients(method, digits, tmp_path):
    parts = parts_of(digits, tmp_path, method=method, aug="strong", prior="pixel", k=5, positives=2)
    step = PairStep(parts)
    anchors = torch.arange(64)
    v1, v2, positives = step.views(anchors)
    assert v1.shape[0] == 64 and v2.shape[0] == 128 and positives.shape == (128,)
    loss = step.loss(v1, v2, anchors, positives)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in parts.method.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_asymmetric_views_augment_the_anchors_with_the_first_pipeline_only(digits, tmp_path):
    """With m positives the augmentation's first pipeline takes the B anchors, the second all m * B positives."""
    aug_args = {"view1": {"solarize_p": 1.0}, "view2": {"solarize_p": 0.0}}
    parts = parts_of(digits, tmp_path, method="byol", aug="weak", aug_args=aug_args, positives=3)
    v1, v2, _ = PairStep(parts).views(torch.arange(64))
    mean, std = torch.as_tensor(digits.mean).view(1, -1, 1, 1), torch.as_tensor(digits.std).view(1, -1, 1, 1)
    unit1, unit2 = v1 * std + mean, v2 * std + mean
    assert (unit1 <= 0.5 + 1e-4).all()  # solarised: every value at or below 1/2
    assert (unit2 > 0.5 + 1e-3).any()
