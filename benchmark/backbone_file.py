"""An exported backbone file (`gpsbench export`, benchmark/export.py): its format, its metadata, and
the backbone rebuilt from it. Safetensors holds tensors and strings only, so loading an exported file
runs no code from it (docs/design.md, Contracts). Priors whose weights are an export and the public
`benchmark.load_backbone` read exports here, with nothing of a run's config or data."""

from __future__ import annotations

import json
from pathlib import Path

import torch.nn as nn

from benchmark.backbones import build_backbone
from benchmark.errors import ConfigError, DamagedFile
from benchmark.export_header import header_problem
from benchmark.safeload import load_safetensors

FORMAT = "gps-bench-backbone/1"  # metadata["format"] of every exported file
FORMAT_KEY = "format"


def _header(path: Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ConfigError(f"backbone file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise DamagedFile(path, f"not a safetensors file ({' '.join(str(err).split())[:200]})") from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an exported backbone, every key checked (benchmark/export_header.py); ConfigError
    when the file is not one, DamagedFile when its header was edited into something that rebuilds nothing."""
    path = Path(path)
    metadata = _header(path)
    if metadata.get(FORMAT_KEY) != FORMAT:
        raise ConfigError(
            f"{str(path)!r} is not a gps-bench backbone export (its metadata has no format {FORMAT!r}); "
            "make one with: gpsbench export RUN_DIR --out FILE.safetensors"
        )
    problem = header_problem(metadata)
    if problem:
        raise DamagedFile(path, f"its export header is damaged: {problem}")
    return metadata


def is_export(path: str | Path) -> bool:
    """Whether `path` is a .safetensors file that says it was written by export_backbone (a damaged
    header included: loading it then says what is wrong, instead of reading it as plain weights)."""
    try:
        return _header(Path(path)).get(FORMAT_KEY) == FORMAT
    except (ConfigError, DamagedFile):
        return False


def load_backbone(path: str | Path) -> nn.Module:
    """An exported backbone, rebuilt from its metadata and loaded strictly, in eval mode: images
    (N, 3, H, W) normalised with metadata mean/std -> (N, feature_dim) features."""
    metadata = read_metadata(path)
    model, feat_dim = build_backbone(
        metadata["backbone"], int(metadata["image_size"]), cifar_stem=json.loads(metadata["cifar_stem"])
    )
    tensors = load_safetensors(Path(path))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise DamagedFile(
            Path(path), f"its tensors do not fit {metadata['backbone']} ({' '.join(str(err).split())[:200]})"
        ) from None
    if str(feat_dim) != metadata["feature_dim"]:
        raise DamagedFile(Path(path), f"feature_dim {metadata['feature_dim']} but the backbone gives {feat_dim}")
    return model.eval()
