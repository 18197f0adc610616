"""Neighbour tables and pair samplers (moved into this package; split into modules in the next commit)."""

from benchmark.neighbors.search import *  # noqa: F403
from benchmark.neighbors.search import _drop_self, _prepare  # noqa: F401
