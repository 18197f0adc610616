"""gps-bench: a benchmark suite for Guided Positive Sampling SSL."""

__version__ = "0.1.0"
