"""A trained backbone people can take away (`gpsbench export`): one .safetensors file of its tensors,
and in its metadata what rebuilds it (the suite's backbone name, the timm model, the stem, the image
size and the normalisation it was trained on). Reading such a file back is benchmark/backbone_file.py."""

from __future__ import annotations

import json
from pathlib import Path

import torch.nn as nn

import benchmark
from benchmark.backbone_file import FORMAT, FORMAT_KEY
from benchmark.backbones import BACKBONES, CIFAR_STEM_MAX_SIZE, TIMM_PREFIX, build_backbone, load_state
from benchmark.config import RunConfig
from benchmark.data import load_run_data
from benchmark.errors import ConfigError
from benchmark.rundir import RunDir, atomic_write_bytes, read_object


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
    data = load_run_data(RunConfig.from_dict(config))
    return data.image_size, list(data.mean), list(data.std)


def export_backbone(run_dir: str | Path, out: str | Path) -> dict[str, str]:
    """Write the backbone of a done run (its final checkpoint.pt) to `out` (.safetensors); return the
    metadata written. Checks come first: the run is done, its checkpoint and config are there."""
    from safetensors.torch import save

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
    # serialised in memory, then written atomically: a full disk is one line naming the file and the
    # size it needed, and never leaves a partial file
    atomic_write_bytes(out, save(tensors, metadata=metadata))
    return metadata


def export_summary(path: str | Path, metadata: dict[str, str]) -> str:
    """One line for the command: where the file is and what rebuilds it."""
    size = Path(path).stat().st_size / 1e6
    return (
        f"exported {metadata['backbone']} (timm model {metadata['timm_model'] or 'none'}, stem "
        f"{metadata['stem']}, {metadata['image_size']} px, {metadata['feature_dim']}-d features) of run "
        f"{metadata['run_id']} ({metadata['method']}, {metadata['dataset']}, {metadata['epochs']} epochs) "
        f"to {path} ({size:.1f} MB)"
    )
