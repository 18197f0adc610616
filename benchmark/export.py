"""A trained backbone people can take away: one .safetensors file of its tensors, and in its metadata
what rebuilds it (the suite's backbone name, the timm model, the stem, the image size and the
normalisation it was trained on). Safetensors holds tensors and strings only, so loading an exported
file runs no code from it (docs/design.md, Contracts)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch.nn as nn

import benchmark
from benchmark.backbones import BACKBONES, CIFAR_STEM_MAX_SIZE, TIMM_PREFIX, build_backbone, load_state
from benchmark.errors import ConfigError, DamagedFile
from benchmark.rundir import RunDir, read_object

FORMAT = "gps-bench-backbone/1"  # metadata["format"] of every exported file
FORMAT_KEY = "format"


def stem_description(model: nn.Module) -> str:
    """The first convolution as people read it (`conv3x3/s1/p2, no maxpool`), from the module itself."""
    conv = getattr(model, "conv1", None)
    if not isinstance(conv, nn.Conv2d):
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return "none"
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding
    text = f"conv{k}x{k}/s{s}/p{p[0] if isinstance(p, tuple) else p}"
    if hasattr(model, "maxpool"):
        text += ", maxpool" if not isinstance(model.maxpool, nn.Identity) else ", no maxpool"
    return text


def timm_model_name(name: str, model: nn.Module) -> str:
    """The timm model of a backbone: a timm name as is; a backbone of this suite's own names it as its
    `timm_model` (the CIFAR ResNets: timm's ResNet of that name shares their tensors, loaded with the
    stem of the metadata); empty where timm has none (the small CNN)."""
    if name in BACKBONES:
        return str(getattr(model, "timm_model", ""))
    return name.removeprefix(TIMM_PREFIX)


def _data_facts(config: dict) -> tuple[int, list[float], list[float]]:
    """Image size and normalisation the run trained on: its data, loaded as the run loaded it (cached)."""
    from benchmark.config import RunConfig
    from benchmark.data import load_run_data

    data = load_run_data(RunConfig.from_dict(config))
    return data.image_size, list(data.mean), list(data.std)


def export_backbone(run_dir: str | Path, out: str | Path) -> dict[str, str]:
    """Write the backbone of a done run (its final checkpoint.pt) to `out` (.safetensors); return the
    metadata written. Checks come first: the run is done, its checkpoint and config are there."""
    from safetensors.torch import save_file

    run, out = RunDir(run_dir), Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out {str(out)!r}: an exported backbone is a .safetensors file")
    if not run.config.is_file():
        raise ConfigError(f"{str(run.path)!r} is not a run directory (no config.json)")
    state = run.read_status().get("state")
    if state != "done":
        raise ConfigError(f"run {str(run.path)!r} is {state}, not done: export the backbone once it has finished")
    config, result = read_object(run.config), run.read_result()
    checkpoint = run.load_checkpoint()
    if checkpoint is None:
        raise ConfigError(f"run {str(run.path)!r} is done but has no checkpoint.pt: nothing to export")
    image_size, mean, std = _data_facts(config)
    pretrained_init = bool(config.get("pretrained") or config.get("weights"))
    name = result.get("backbone") or config["backbone"]
    cifar_stem = image_size <= CIFAR_STEM_MAX_SIZE and not pretrained_init  # as build_backbone chose it
    model, feat_dim = build_backbone(name, image_size, cifar_stem=cifar_stem)
    load_state(model, checkpoint, f"checkpoint {str(run.checkpoint)!r}")
    metadata = {
        FORMAT_KEY: FORMAT,
        "backbone": name,
        "timm_model": timm_model_name(name, model),
        "cifar_stem": json.dumps(cifar_stem),
        "stem": stem_description(model),
        "image_size": str(image_size),
        "feature_dim": str(feat_dim),
        "mean": json.dumps(mean),
        "std": json.dumps(std),
        "run_id": str(result["run_id"]),
        "method": str(result["method"]),
        "dataset": str(result["dataset"]),
        "epochs": str(checkpoint["epoch"]),
        "gps_bench_version": benchmark.__version__,
    }
    tensors = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    save_file(tensors, str(partial), metadata=metadata)
    os.replace(partial, out)
    return metadata


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an exported backbone; ConfigError when the file is not one."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"backbone file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise DamagedFile(path, f"not a safetensors file ({' '.join(str(err).split())[:200]})") from None
    if metadata.get(FORMAT_KEY) != FORMAT:
        raise ConfigError(
            f"{str(path)!r} is not a gps-bench backbone export (its metadata has no format {FORMAT!r}); "
            "make one with: gpsbench export RUN_DIR --out FILE.safetensors"
        )
    return metadata


def is_export(path: str | Path) -> bool:
    """Whether `path` is a .safetensors file written by export_backbone."""
    try:
        read_metadata(path)
    except (ConfigError, DamagedFile):
        return False
    return True


def load_backbone(path: str | Path) -> nn.Module:
    """An exported backbone, rebuilt from its metadata and loaded strictly, in eval mode: images
    (N, 3, H, W) normalised with metadata mean/std -> (N, feature_dim) features."""
    from benchmark.safeload import load_safetensors

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


def export_summary(path: str | Path, metadata: dict[str, str]) -> str:
    """One line for the command: where the file is and what rebuilds it."""
    size = Path(path).stat().st_size / 1e6
    return (
        f"exported {metadata['backbone']} (timm model {metadata['timm_model'] or 'none'}, stem "
        f"{metadata['stem']}, {metadata['image_size']} px, {metadata['feature_dim']}-d features) of run "
        f"{metadata['run_id']} ({metadata['method']}, {metadata['dataset']}, {metadata['epochs']} epochs) "
        f"to {path} ({size:.1f} MB)"
    )
