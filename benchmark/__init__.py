"""gps-bench: a benchmark suite for Guided Positive Sampling SSL."""

__version__ = "0.1.0"


def load_backbone(path):
    """An exported backbone (`gpsbench export`) as a ready nn.Module in eval mode (benchmark/backbone_file.py)."""
    from benchmark.backbone_file import load_backbone as load

    return load(path)
