"""Neighbour tables and pair samplers: given a batch of anchor indices, the index of each positive.

`search` builds and caches the N x K neighbour table of a prior embedding, and `samplers` draws each
anchor's positive from it (one registered function per sampling rule). A run's sampler, its prior
paired with its rule, is built above this package (benchmark/pairing.py). The names below are the
package's interface.
"""

from benchmark.neighbors.graph_rules import candidate_report  # (and registers kmeans-cluster, louvain-community, hops)
from benchmark.neighbors.samplers import (
    SAMPLING_RULES,
    BallSampler,
    FixedSampler,
    IdentitySampler,
    KnnUniformSampler,
    PairSampler,
    SameClassSampler,
    SamplerBuilder,
    SamplingChoice,
    SamplingRule,
    check_sampling,
    distinct_columns,
    resolved_sampling_args,
    rule_sampler,
    sampling_args,
    sampling_rule,
)
from benchmark.neighbors.search import (
    APPROXIMATE,
    APPROXIMATE_ABOVE,
    INDEXES,
    METRICS,
    RECALL_QUERIES,
    NeighborTable,
    adaptive_tau,
    build_table,
    faiss_exact,
    faiss_hnsw,
    neighbor_table,
    prior_nn_agreement,
    recall_at_k,
    search_kind,
    torch_exact,
)

__all__ = [
    "APPROXIMATE",
    "APPROXIMATE_ABOVE",
    "INDEXES",
    "METRICS",
    "RECALL_QUERIES",
    "SAMPLING_RULES",
    "BallSampler",
    "FixedSampler",
    "IdentitySampler",
    "KnnUniformSampler",
    "NeighborTable",
    "PairSampler",
    "SameClassSampler",
    "SamplerBuilder",
    "SamplingChoice",
    "SamplingRule",
    "adaptive_tau",
    "build_table",
    "candidate_report",
    "check_sampling",
    "distinct_columns",
    "faiss_exact",
    "faiss_hnsw",
    "neighbor_table",
    "prior_nn_agreement",
    "recall_at_k",
    "resolved_sampling_args",
    "rule_sampler",
    "sampling_args",
    "sampling_rule",
    "search_kind",
    "torch_exact",
]
