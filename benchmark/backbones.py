"""Backbones: the reference CIFAR ResNets, any timm model by name, and a small CNN for CPU runs.

At 64 px or less a ResNet name (`resnet18`, `resnet50`, ...) without pretrained weights means the
reference implementation's CIFAR ResNet (`cifar_resnet18`, ...): torchvision's ResNet, its own
initialisation, with solo-learn's stem (solo/methods/base.py: a 3x3 stride-1 conv1 with padding 2,
no max-pool). `timm:<name>` always means timm's model (at 64 px or less with a 3x3 stride-1,
padding-1 conv1 and no max-pool, and timm's zero-initialised last BatchNorm of each block).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from benchmark.errors import ConfigError
from benchmark.registry import Registry

CIFAR_STEM_MAX_SIZE = 64  # up to this side a 7x7/2 stem + maxpool would throw away most of the image
SMALL_IMAGE_BACKBONE = 24  # "auto": the small CNN below this side (digits), resnet18 above
TIMM_PREFIX = "timm:"
CIFAR_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")  # torchvision's names

Builder = Callable[[], nn.Module]
BACKBONES: Registry[Builder] = Registry("backbone")


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU stages (32-64-128-256), global average pool: trains in seconds on 2 CPU cores."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        layers, channels = [], 3
        for i, width in enumerate(widths):
            layers += [
                nn.Conv2d(channels, width, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


BACKBONES.register("small")(SmallCNN)


def _cifar_resnet(name: str) -> Builder:
    def build() -> nn.Module:
        import torchvision

        model = torchvision.models.get_model(name, weights=None)  # torchvision's init, zero_init_residual off
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, kernel_size=3, stride=1, padding=2, bias=False)
        model.maxpool = nn.Identity()
        model.num_features = model.fc.in_features
        model.fc = nn.Identity()
        model.timm_model = name  # timm's ResNet of this name shares these tensors (given this stem): exports say so
        return model

    return build


for _name in CIFAR_RESNETS:
    BACKBONES.register(f"cifar_{_name}")(_cifar_resnet(_name))


def resolve_backbone_name(name: str, image_size: int, pretrained: bool = False, weights: object = None) -> str:
    """The backbone a name builds at this image size: `auto` is the small CNN below 24 px, else
    resnet18; a ResNet name at <= 64 px without pretrained weights is the reference CIFAR ResNet."""
    if name == "auto":
        name = "small" if image_size < SMALL_IMAGE_BACKBONE else "resnet18"
    if name in CIFAR_RESNETS and image_size <= CIFAR_STEM_MAX_SIZE and not (pretrained or weights):
        return f"cifar_{name}"
    return name


def check_backbone(name: str) -> None:
    import timm

    bare = name.removeprefix(TIMM_PREFIX)
    if name == "auto" or name in BACKBONES or timm.is_model(bare):
        return
    close = difflib.get_close_matches(bare, BACKBONES.names() + timm.list_models(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(
        f"unknown backbone {name!r}{hint}; valid: auto, {', '.join(BACKBONES.names())}, "
        "or any timm model name, optionally as timm:<name> (python -c 'import timm; print(timm.list_models())')"
    )


def build_backbone(
    name: str,
    image_size: int,
    pretrained: bool = False,
    weights: str | Path | None = None,
    cifar_stem: bool | None = None,
) -> tuple[nn.Module, int]:
    """A feature extractor (images -> (N, D) features) and D.

    timm's ImageNet-style stems get a CIFAR stem (3x3 stride-1 conv1, no maxpool) on images <= 64 px,
    unless pretrained weights are loaded: those were learnt with the original stem. `cifar_stem`
    overrides that choice (to rebuild an earlier run's backbone from its checkpoint).
    """
    if cifar_stem is None:
        cifar_stem = image_size <= CIFAR_STEM_MAX_SIZE and not (pretrained or weights)
    name = resolve_backbone_name(name, image_size, pretrained, weights)
    check_backbone(name)
    if name in BACKBONES:
        model = BACKBONES.get(name)()
    else:
        import timm

        try:
            model = timm.create_model(
                name.removeprefix(TIMM_PREFIX), pretrained=pretrained and weights is None, num_classes=0
            )
        except Exception as err:
            if not pretrained:
                raise
            raise ConfigError(
                f"pretrained weights for {name!r} could not be fetched ({type(err).__name__}); "
                "pass weights: <local file> (a timm/torch state dict or a .safetensors file)"
            ) from None
        if cifar_stem:
            _cifar_stem(model)
    if weights is not None:
        load_weights(model, Path(weights))
    # torch types nn.Module.__getattr__ as Tensor | Module; num_features is a plain int attribute (stub too narrow)
    return model, int(model.num_features)  # type: ignore[arg-type]


def _cifar_stem(model: nn.Module) -> None:
    conv1 = getattr(model, "conv1", None)
    if isinstance(conv1, nn.Conv2d) and hasattr(model, "maxpool"):
        model.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a local weights file: a state dict, a {'state_dict'|'model'|'backbone': ...} checkpoint
    (including this suite's checkpoint.pt), or .safetensors. Classifier keys are ignored."""
    from benchmark.safeload import load_safetensors, load_torch

    if not path.is_file():
        raise ConfigError(f"weights file {str(path)!r} does not exist")
    state = load_safetensors(path) if path.suffix == ".safetensors" else load_torch(path, "weights file")
    if not isinstance(state, dict):
        raise ConfigError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    load_state(model, state, f"weights file {str(path)!r}")


def load_state(model: nn.Module, state, source: str) -> None:
    """Load the tensors of `state` that fit `model` (a state dict, possibly wrapped, or this suite's
    checkpoint); every backbone tensor must be there. `source` names it in errors."""
    if isinstance(state, dict) and isinstance(state.get("method"), dict):  # this suite's checkpoint.pt
        state = {k[len("backbone.") :]: v for k, v in state["method"].items() if k.startswith("backbone.")}
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and isinstance(v, torch.Tensor) and own[k].shape == v.shape}
    if not usable:
        raise ConfigError(f"{source} has no tensor that fits {type(model).__name__}")
    model.load_state_dict(usable, strict=False)
    missing = sorted(set(own) - set(usable))
    if any(not k.endswith("num_batches_tracked") for k in missing):
        raise ConfigError(f"{source} lacks {len(missing)} backbone tensors, e.g. {missing[:3]}")
