"""Several positives per anchor (`positives: m`): how they are drawn, laid out and handed to a method.

Drawing. m = 1 is the sampler's one draw, the pair of every run before this option (same draws, same
losses, same run_id). For m > 1:
- a rule whose sampler has `draw_distinct` (knn-uniform) draws m *different* candidates among its k
  neighbours (+ the anchor with include_self), without replacement: m > k (+ 1) is a config error;
- every other rule draws m times independently, with replacement: `radius` and the `oracle` prior may
  draw one image twice; a rule with one candidate gives it m times, each augmented on its own:
  `farthest-in-ball`, and plain SSL (no prior), where positives: m means m + 1 augmentations of x.

Layout. Positives come back flat, (m * B,): positive j of anchor i at row j * B + i. The batch
augments anchors with the first view's pipeline and all m * B positives with the second's.

Loss. Each method says how it uses m positive views (`SSLMethod.multi_positive_loss`): by default the
mean of its pairwise loss over (anchor view, positive view j); SimCLR overrides it with the
multi-positive NT-Xent (benchmark/methods/simclr.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from benchmark.methods import SSLMethod
from benchmark.neighbors import PairSampler


def draw_positives(sampler: PairSampler, anchors: torch.Tensor, generator: torch.Generator, m: int) -> torch.Tensor:
    """The positives' indices, flat (m * B,) (see the module's docstring for the rule)."""
    if m == 1:
        return sampler(anchors, generator)
    distinct = getattr(sampler, "draw_distinct", None)
    if distinct is not None:
        return distinct(anchors, generator, m).T.reshape(-1)
    return torch.cat([sampler(anchors, generator) for _ in range(m)])


class MultiPositive(nn.Module):
    """What the training step calls when m > 1: forward(v1, v2) with v2 the m * B positive views
    (and ids=(anchors, positives) for a method that uses pair ids) -> the method's multi_positive_loss.
    A module, so that DistributedDataParallel and torch.compile wrap it as they wrap the method."""

    def __init__(self, method: SSLMethod, m: int):
        super().__init__()
        self.method, self.m = method, m

    def forward(self, v1: torch.Tensor, v2: torch.Tensor, ids=None) -> torch.Tensor:
        views = list(v2.chunk(self.m))
        pair_ids = None if ids is None else [(ids[0], p) for p in ids[1].chunk(self.m)]
        return self.method.multi_positive_loss(v1, views, pair_ids)
