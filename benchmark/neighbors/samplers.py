"""Pair samplers: given a batch of anchor indices, the index of each anchor's positive.

Plain SSL pairs an image with itself (two augmentations of one image); GPS pairs it with one of its
neighbours in the prior's table. Samplers gather and draw on the device, with no per-sample Python,
so the training step never waits on the host. A sampling rule is one function registered here with
`@sampling_rule(name, needs_radius=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np
import torch

from benchmark.neighbors.search import adaptive_tau
from benchmark.registry import Registry


def distinct_columns(rows: int, candidates: int, m: int, generator: torch.Generator, device) -> torch.Tensor:
    """(rows, m) column indices, m different ones of `candidates` per row, every m-subset (and order)
    equally likely: the first m of a random permutation per row."""
    keys = torch.rand(rows, candidates, generator=generator, device=device)
    return keys.argsort(dim=1)[:, :m]


class PairSampler(Protocol):
    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


class IdentitySampler:
    """Plain SSL (prior none or k = 0): the positive of x is x itself."""

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return anchors


class KnnUniformSampler:
    """The official code's rule: x' uniform among the k nearest neighbours, redrawn at every use;
    with include_self, x itself is a (k+1)-th candidate."""

    def __init__(self, table: torch.Tensor, k: int, include_self: bool = False):
        self.table, self.k, self.include_self = table[:, :k].long(), k, include_self

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        column = torch.randint(0, self.k + self.include_self, anchors.shape, generator=generator, device=anchors.device)
        drawn = self.table[anchors, column.clamp(max=self.k - 1)]
        return torch.where(column == self.k, anchors, drawn) if self.include_self else drawn

    def draw_distinct(self, anchors: torch.Tensor, generator: torch.Generator, m: int) -> torch.Tensor:
        """(B, m): m different candidates per anchor, without replacement (`positives: m`)."""
        column = distinct_columns(len(anchors), self.k + self.include_self, m, generator, anchors.device)
        drawn = self.table[anchors[:, None], column.clamp(max=self.k - 1)]
        return torch.where(column == self.k, anchors[:, None], drawn) if self.include_self else drawn

    def candidate_lists(self) -> tuple[np.ndarray, np.ndarray]:
        """(every anchor's candidates, flat; their count per anchor), for `graph_rules.candidate_report`."""
        table = self.table.cpu().numpy()
        if self.include_self:
            table = np.concatenate([table, np.arange(len(table))[:, None]], axis=1)
        return table.ravel(), np.full(len(table), table.shape[1])


class BallSampler:
    """`radius`: x' uniform among the neighbours within distance tau (of the k nearest); x itself
    when none is (and as one more candidate with include_self)."""

    def __init__(self, table: torch.Tensor, within: torch.Tensor, include_self: bool = False):
        self.table, self.within = table.long(), within
        self.cumulative = within.long().cumsum(dim=1)
        self.inside = within.sum(dim=1)
        self.include_self = include_self

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        inside = self.inside[anchors]
        candidates = inside + self.include_self
        rank = (torch.rand(anchors.shape, generator=generator, device=anchors.device) * candidates).long()
        column = (self.cumulative[anchors] <= rank[:, None]).sum(dim=1)  # the (rank+1)-th column within tau
        drawn = self.table[anchors, column.clamp(max=self.table.shape[1] - 1)]
        return torch.where(rank >= inside, anchors, drawn)

    def candidate_lists(self) -> tuple[np.ndarray, np.ndarray]:
        """(candidates flat, count per anchor): the columns within tau, and x itself where none is or
        with include_self."""
        table, within = self.table.cpu().numpy(), self.within.cpu().numpy()
        lists = [
            np.append(row[mask], i) if self.include_self or not mask.any() else row[mask]
            for i, (row, mask) in enumerate(zip(table, within))
        ]
        return np.concatenate(lists), np.array([len(c) for c in lists])


class FixedSampler:
    """A fixed positive per image (the paper's `farthest-in-ball`: the farthest neighbour within tau)."""

    def __init__(self, positives: torch.Tensor):
        self.positives = positives.long()

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.positives[anchors]


class SameClassSampler:
    """The oracle: x' uniform among the other images of x's class (uses labels: an upper bound)."""

    def __init__(self, labels: torch.Tensor):
        labels = labels.long()
        self.labels = labels
        self.order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels)
        self.counts = counts
        self.starts = counts.cumsum(0) - counts
        self.rank = torch.empty_like(self.order)
        self.rank[self.order] = torch.arange(len(labels), device=labels.device)

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cls = self.labels[anchors]
        count, start = self.counts[cls], self.starts[cls]
        own = self.rank[anchors] - start
        pick = (torch.rand(anchors.shape, generator=generator, device=anchors.device) * (count - 1)).long()
        pick = pick + (pick >= own).long()  # skip the anchor itself
        pick = torch.where(count > 1, pick, own)
        return self.order[start + pick]


SamplerBuilder = Callable[..., PairSampler]


@dataclass(frozen=True)
class SamplingRule:
    """How x' is drawn from the neighbour table: `build(table, dist, k, tau, include_self)` gives the
    sampler; `needs_radius`: the rule uses tau (so adaptive tau needs tau_neighbors columns);
    `distinct_positives`: with `positives: m` its sampler draws m different ones among its k (+ self)
    candidates (`draw_distinct`), so m may not exceed them (benchmark/positives.py). A rule with
    settings declares their typed `params` (the config's `sampling_args`), `width(k, args)` (the table
    columns it reads, if more than k) and the `inputs` its builder takes by keyword besides the table:
    `args` (its params), `vectors` (the embedding the table was searched in), `seed` (the run's)."""

    build: SamplerBuilder
    needs_radius: bool
    distinct_positives: bool = False
    params: type | None = None
    width: Callable[[int, Any], int] | None = None
    inputs: tuple[str, ...] = ()

    def columns(self, k: int, args: Any) -> int:
        return max(k, self.width(k, args)) if self.width else k


SAMPLING_RULES: Registry[SamplingRule] = Registry("sampling rule")


def sampling_rule(
    name: str,
    needs_radius: bool,
    distinct_positives: bool = False,
    params: type | None = None,
    width: Callable[[int, Any], int] | None = None,
    inputs: tuple[str, ...] = (),
) -> Callable[[SamplerBuilder], SamplerBuilder]:
    """Register a builder as the sampling rule `name` (see SamplingRule for the settings)."""

    def add(build: SamplerBuilder) -> SamplerBuilder:
        SAMPLING_RULES.register(name)(SamplingRule(build, needs_radius, distinct_positives, params, width, inputs))
        return build

    return add


def sampling_args(sampling: str, values: dict) -> Any:
    """The rule's typed settings from the config's `sampling_args` (None for a rule without any, which
    takes none); unknown keys and bad values named."""
    from benchmark.errors import ConfigError
    from benchmark.params import resolve_params

    rule = SAMPLING_RULES.get(sampling)
    if rule.params is None:
        if values:
            raise ConfigError(f"sampling {sampling!r} takes no sampling_args, got {sorted(values)}")
        return None
    return resolve_params(rule.params, values, "sampling_args", f"sampling {sampling!r}")


@sampling_rule("knn-uniform", needs_radius=False, distinct_positives=True)
def _knn_uniform(table: torch.Tensor, dist: torch.Tensor, k: int, tau: float | None, include_self: bool) -> PairSampler:
    return KnnUniformSampler(table, k, include_self)


@sampling_rule("radius", needs_radius=True)
def _radius(table: torch.Tensor, dist: torch.Tensor, k: int, tau: float, include_self: bool) -> PairSampler:
    return BallSampler(table[:, :k], dist[:, :k] <= tau, include_self)


@sampling_rule("farthest-in-ball", needs_radius=True)
def _farthest(table: torch.Tensor, dist: torch.Tensor, k: int, tau: float, include_self: bool) -> PairSampler:
    within = dist[:, :k] <= tau
    last = within.long().cumsum(dim=1).argmax(dim=1)  # first column reaching the final count = farthest inside
    rows = torch.arange(len(table), device=table.device)
    return FixedSampler(torch.where(within.any(dim=1), table[rows, last].long(), rows))


class SamplingChoice(Protocol):
    """What a run's config says of its sampling rule (RunConfig's fields of these names)."""

    @property
    def sampling(self) -> str: ...
    @property
    def sampling_args(self) -> dict: ...
    @property
    def k(self) -> int: ...
    @property
    def tau(self) -> float | None: ...
    @property
    def tau_neighbors(self) -> int: ...
    @property
    def include_self(self) -> bool: ...
    @property
    def metric(self) -> str: ...
    @property
    def seed(self) -> int: ...


def rule_sampler(
    choice: SamplingChoice,
    index: np.ndarray,
    dist: np.ndarray,
    device: torch.device,
    vectors: torch.Tensor | None = None,
) -> tuple[PairSampler, float | None]:
    """The chosen sampling rule over a neighbour table, and the radius it uses (adaptive tau is
    computed from this table's distances; None for rules without a radius). `vectors`: the embedding
    the table was searched in, for a rule that reads it (as the search saw it: unit length for cosine)."""
    rule = SAMPLING_RULES.get(choice.sampling)
    tau = None
    if rule.needs_radius:
        tau = choice.tau if choice.tau is not None else adaptive_tau(dist, choice.tau_neighbors)
    index_t, dist_t = torch.as_tensor(index, device=device), torch.as_tensor(dist, device=device)
    inputs = {"args": sampling_args(choice.sampling, choice.sampling_args), "seed": choice.seed}
    if "vectors" in rule.inputs:
        assert vectors is not None, f"sampling {choice.sampling!r} reads the embedding (refused with refresh_every)"
        x = vectors.float()
        inputs["vectors"] = (torch.nn.functional.normalize(x, dim=1) if choice.metric == "cosine" else x).cpu().numpy()
    extra = {name: inputs[name] for name in rule.inputs}
    return rule.build(index_t, dist_t, choice.k, tau, choice.include_self, **extra), tau


def resolved_sampling_args(sampling: str, values: dict) -> dict:
    """`sampling_args` with the rule's defaults made explicit, as run_id hashes them ({} for a rule
    without settings, which new_key keeps out of run_id; as given for an unknown rule)."""
    import dataclasses

    if sampling not in SAMPLING_RULES:
        return dict(values)
    params = sampling_args(sampling, values)
    return dataclasses.asdict(params) if params is not None else {}


def check_sampling(config) -> None:
    """The rule's `sampling_args`; a rule that reads the prior's embedding (k-means clusters) is not
    rebuilt at a refresh (the refreshed table carries no embedding), so refresh_every must be 0."""
    from benchmark.errors import ConfigError

    sampling_args(config.sampling, config.sampling_args)
    if config.refresh_every and "vectors" in SAMPLING_RULES.get(config.sampling).inputs:
        raise ConfigError(
            f"sampling {config.sampling!r} clusters the prior's embedding and is not rebuilt at a refresh; "
            f"valid: refresh_every 0 with it, or another rule"
        )
