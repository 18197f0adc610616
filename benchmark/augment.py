"""Batched augmentation on the device, with per-sample random parameters and a pipeline per view.

uint8 NHWC in, normalised float NCHW (channels_last) out. One call augments both views of a batch
(the anchors' rows, then the positives' rows) with a handful of tensor ops, so the GPU is not
starved by a CPU DataLoader (see docs/design.md, Speed). Each view may have its own pipeline, as the
reference recipes do (BYOL's second view is solarised): the two views' settings sit in a small
table on the device and every op reads its row's values, so an asymmetric pair costs one call too.

Presets: `none`, `weak` (the paper's: horizontal flip only), `crop` (crop + flip) mean the same for
every method; `strong` is the method's reference recipe (solo-learn's augmentation file for that
method: see each method's `recipe`).
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from benchmark.errors import ConfigError, choice_error
from benchmark.registry import Registry

LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601 weights, exactly as torchvision's rgb_to_grayscale
LARGE_IMAGE_SIZE = 96  # `strong` takes a recipe's large-image (ImageNet) pipeline from this side up
INTERPOLATIONS = ("bilinear", "bicubic")
VIEWS = ("view1", "view2")
SHARED_KEYS = ("crop_ratio", "size", "interpolation")  # one batch tensor: both views share these


@dataclass(frozen=True)
class AugmentParams:
    """One view's pipeline: crop -> colour jitter -> grayscale -> blur -> solarise (flip anywhere:
    it commutes), solo-learn's order (solo/data/pretrain_dataloader.py, build_transform_pipeline)."""

    flip_p: float = 0.0
    crop: bool = False
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    jitter_p: float = 0.0
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    size: int | None = None  # output side; None keeps the input size
    interpolation: str = "bicubic"  # of crop and resize: solo-learn's RandomResizedCrop uses BICUBIC

    def validate(self, prefix: str = "aug_args") -> None:
        problems = []
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{prefix}.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                problems.append(f"{prefix}.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            problems.append(f"{prefix}.hue must be in [0, 0.5], got {self.hue}")
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                problems.append(f"{prefix}.{name} must be (low, high) with 0 < low <= high, got {getattr(self, name)}")
        if self.crop_scale[1] > 1:
            problems.append(f"{prefix}.crop_scale must not exceed 1, got {self.crop_scale}")
        if self.size is not None and self.size < 1:
            problems.append(f"{prefix}.size must be positive, got {self.size}")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(str(choice_error(f"{prefix}.interpolation", self.interpolation, INTERPOLATIONS)))
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class ViewPair:
    """The pipelines of the two views: view1 augments the anchors, view2 their positives."""

    view1: AugmentParams
    view2: AugmentParams

    @property
    def symmetric(self) -> bool:
        return self.view1 == self.view2

    @classmethod
    def both(cls, params: AugmentParams) -> "ViewPair":
        return cls(params, params)


@dataclass(frozen=True)
class ReferencePipeline:
    """A reference augmentation file: each view's AugmentParams values, and the file they come from."""

    view1: Mapping[str, Any]
    view2: Mapping[str, Any]
    source: str


# solo-learn's shared augmentation files (scripts/pretrain/<cifar|imagenet-100>/augmentations/*.yaml at
# vturrisi/solo-learn 9187ea3, the same values as aarashfeizi/gps-ssl's copies); each method's recipe
# names the one it uses. Values not listed are AugmentParams' defaults (flip 0.5 is listed).
_CIFAR_ASYMMETRIC_VIEW = {  # scripts/pretrain/cifar/augmentations/asymmetric.yaml (both entries)
    "crop": True,
    "crop_scale": (0.08, 1.0),
    "jitter_p": 0.8,
    "brightness": 0.4,
    "contrast": 0.4,
    "saturation": 0.2,
    "hue": 0.1,
    "grayscale_p": 0.2,
    "blur_p": 0.0,
    "flip_p": 0.5,
}
SOLO_CIFAR_ASYMMETRIC = ReferencePipeline(
    view1={**_CIFAR_ASYMMETRIC_VIEW, "solarize_p": 0.0},  # first entry: solarization prob 0.0
    view2={**_CIFAR_ASYMMETRIC_VIEW, "solarize_p": 0.2},  # second entry: solarization prob 0.2
    source="solo-learn scripts/pretrain/cifar/augmentations/asymmetric.yaml",
)
SOLO_IMAGENET_ASYMMETRIC = ReferencePipeline(  # scripts/pretrain/imagenet-100/augmentations/asymmetric.yaml
    view1={**_CIFAR_ASYMMETRIC_VIEW, "blur_p": 1.0, "solarize_p": 0.0},  # first entry: blur 1.0
    view2={**_CIFAR_ASYMMETRIC_VIEW, "blur_p": 0.1, "solarize_p": 0.2},  # second: blur 0.1, solarization 0.2
    source="solo-learn scripts/pretrain/imagenet-100/augmentations/asymmetric.yaml",
)


@dataclass(frozen=True)
class StrongRecipe:
    """A method's `strong` augmentation: its small-image (CIFAR) and large-image (ImageNet) files."""

    small: ReferencePipeline
    large: ReferencePipeline

    def at(self, image_size: int) -> ReferencePipeline:
        return self.large if image_size >= LARGE_IMAGE_SIZE else self.small


# -------------------------------------------------------------------------------- presets
PresetFn = Callable[[int, str], tuple[Mapping[str, Any], Mapping[str, Any]]]
AUGMENTATIONS: Registry[PresetFn] = Registry("augmentation")


def _same(values: Mapping[str, Any]) -> PresetFn:
    return lambda size, method: (values, values)


def _method_recipe(size: int, method: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    from benchmark.methods import METHODS

    pipeline = METHODS.get(method).recipe.strong.at(size)
    return pipeline.view1, pipeline.view2


AUGMENTATIONS.register("none")(_same({}))
AUGMENTATIONS.register("weak")(_same({"flip_p": 0.5}))  # the paper's weak DA: horizontal flip only
AUGMENTATIONS.register("crop")(_same({"flip_p": 0.5, "crop": True}))
AUGMENTATIONS.register("strong")(_method_recipe)


def _coerce_aug_value(key: str, value: Any, prefix: str) -> Any:
    default = getattr(AugmentParams(), key)
    if isinstance(default, tuple):
        if not (isinstance(value, (list, tuple)) and len(value) == 2) or any(isinstance(v, bool) for v in value):
            raise ConfigError(f"{prefix}.{key} must be a pair [low, high], got {value!r}")
        try:
            return tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"{prefix}.{key} must be a pair of numbers, got {value!r}") from None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{prefix}.{key} must be true or false, got {value!r}")
        return value
    if key == "size":
        if not (value is None or (isinstance(value, int) and not isinstance(value, bool))):
            raise ConfigError(f"{prefix}.size must be an integer or null, got {value!r}")
        return value
    if key == "interpolation":
        if not isinstance(value, str):
            raise ConfigError(f"{prefix}.interpolation must be one of {', '.join(INTERPOLATIONS)}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{prefix}.{key} must be a number, got {value!r}")
    return float(value)


def _apply(values: dict[str, Any], overrides: Mapping[str, Any], prefix: str) -> None:
    known = {f.name for f in dataclasses.fields(AugmentParams)}
    for key, value in overrides.items():
        if key not in known:
            raise choice_error(f"{prefix} key", key, sorted(known) + (list(VIEWS) if prefix == "aug_args" else []))
        values[key] = _coerce_aug_value(key, value, prefix)


def resolve_aug_params(preset: str, overrides: Mapping[str, Any], image_size: int, method: str = "simclr") -> ViewPair:
    """Both views' pipelines: the preset for this image size and method, then the user's overrides,
    type-checked. A plain key (`solarize_p: 0.1`) sets both views; `view1: {...}` / `view2: {...}` set
    one. crop_ratio, size and interpolation must be the same in both views."""
    first, second = (dict(v) for v in AUGMENTATIONS.get(preset)(image_size, method))
    shared = {k: v for k, v in overrides.items() if k not in VIEWS}
    for values in (first, second):
        _apply(values, shared, "aug_args")
    for name, values in zip(VIEWS, (first, second)):
        own = overrides.get(name, {})
        if not isinstance(own, Mapping):
            raise ConfigError(f"aug_args.{name} must be a mapping of aug_args keys, got {own!r}")
        _apply(values, own, f"aug_args.{name}")
    pair = ViewPair(AugmentParams(**first), AugmentParams(**second))
    pair.view1.validate("aug_args" if pair.symmetric else "aug_args.view1")
    if not pair.symmetric:
        pair.view2.validate("aug_args.view2")
    differ = [k for k in SHARED_KEYS if getattr(pair.view1, k) != getattr(pair.view2, k)]
    if differ:
        raise ConfigError(
            f"aug_args: the two views must share {', '.join(differ)} (one batch tensor); got "
            + ", ".join(f"{k} {getattr(pair.view1, k)!r} vs {getattr(pair.view2, k)!r}" for k in differ)
        )
    return pair


# ----------------------------------------------------------------------------- helpers
def to_unit_float(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1] (a view of the NHWC bytes: channels_last), optionally
    resized to size x size (bilinear, antialiased)."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if size is not None and (x.shape[-2], x.shape[-1]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW in channels_last memory (optionally resized first)."""
    return ((to_unit_float(images, size) - mean) / std).contiguous(memory_format=torch.channels_last)


Bound = float | torch.Tensor  # a Python number, or a per-sample column that broadcasts against (n, attempts)


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[Bound, Bound],
    ratio: tuple[float, float],
    generator: torch.Generator,
    device: torch.device,
    attempts: int = 10,
) -> torch.Tensor:
    """torchvision's RandomResizedCrop rule, vectorised: (n, 4) boxes (top, left, h, w) in pixels.

    Each sample tries `attempts` (area, log-aspect) draws and keeps the first that fits; when none
    fits it falls back to the centre crop with the aspect ratio clamped, as torchvision does. The
    scale bounds may be per-sample (n, 1) columns.
    """
    area = height * width
    u = torch.rand(n, attempts, 4, generator=generator, device=device)
    target = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    w = torch.sqrt(target * aspect).round()
    h = torch.sqrt(target / aspect).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.float().argmax(dim=1, keepdim=True)
    any_fit = fits.any(dim=1)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    top = torch.floor(u[..., 2].gather(1, first).squeeze(1) * (height - h + 1))
    left = torch.floor(u[..., 3].gather(1, first).squeeze(1) * (width - w + 1))
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(height * ratio[1]), height
    else:
        fw, fh = width, height
    fallback = ((height - fh) // 2, (width - fw) // 2, fh, fw)  # Python scalars: no host-to-device copy
    return torch.stack(
        [torch.where(any_fit, value, float(alt)) for value, alt in zip((top, left, h, w), fallback)], dim=1
    )


# The per-view numbers BatchAugment keeps on the device, one row per view.
_COLUMNS = (
    "flip_p",
    "crop",
    "scale_lo",
    "scale_hi",
    "jitter_p",
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "grayscale_p",
    "blur_p",
    "sigma_lo",
    "sigma_hi",
    "solarize_p",
)


def _row(p: AugmentParams) -> list[float]:
    return [
        p.flip_p,
        float(p.crop),
        *p.crop_scale,
        p.jitter_p,
        p.brightness,
        p.contrast,
        p.saturation,
        p.hue,
        p.grayscale_p,
        p.blur_p,
        *p.blur_sigma,
        p.solarize_p,
    ]


class BatchAugment:
    """Augments a batch of uint8 NHWC images on their own device; per-sample randomness from the given
    generator. With two different view pipelines the batch's first half takes view1's and its second
    half view2's (train.py stacks anchors, then positives). The colour-jitter order, which Python
    control flow needs, comes from a host RNG (`order_rng`, seeded with `seed`): drawing it on the
    device and reading it back would make the host wait for the GPU at every step."""

    def __init__(self, views: ViewPair | AugmentParams, mean, std, device: torch.device | str = "cpu", seed: int = 0):
        self.views = views if isinstance(views, ViewPair) else ViewPair.both(views)
        self.device = torch.device(device)
        self.order_rng = random.Random(seed)
        self.mean = torch.tensor(mean, device=self.device, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device, dtype=torch.float32).view(1, 3, 1, 1)
        self.luma = torch.tensor(LUMA, device=self.device).view(1, 3, 1, 1)
        pipelines = (self.views.view1,) if self.views.symmetric else (self.views.view1, self.views.view2)
        self.table = torch.tensor([_row(p) for p in pipelines], device=self.device)
        self.uses = {
            name: max(getattr(p, name) for p in pipelines)
            for name in (
                "flip_p",
                "crop",
                "jitter_p",
                "brightness",
                "contrast",
                "saturation",
                "hue",
                "grayscale_p",
                "blur_p",
                "solarize_p",
            )
        }
        self.sigma_max = max(p.blur_sigma[1] for p in pipelines)
        shared = self.views.view1
        self.crop_ratio, self.size, self.interpolation = shared.crop_ratio, shared.size, shared.interpolation

    @property
    def params(self) -> AugmentParams:
        """The pipeline of both views (symmetric pairs only)."""
        if not self.views.symmetric:
            raise ValueError("the two views have different pipelines: read .views")
        return self.views.view1

    def _column(self, values: torch.Tensor, name: str) -> torch.Tensor:
        """Each sample's value of one setting, shaped (n, 1, 1, 1) (or (1, 1, 1, 1) when symmetric)."""
        return values[:, _COLUMNS.index(name)].view(-1, 1, 1, 1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator, anchors: int | None = None) -> torch.Tensor:
        """`anchors`: how many first rows take the first view's pipeline (default: half; more
        positives than anchors with `positives: m`)."""
        n, height, width, _ = images.shape
        if len(self.table) > 1:
            if anchors is None and n % 2:
                raise ValueError(f"two view pipelines need an even batch (anchors, then positives), got {n}")
            first = n // 2 if anchors is None else anchors
            values = self.table[(torch.arange(n, device=self.device) >= first).long()]
        else:
            values = self.table
        col = lambda name: self._column(values, name)  # noqa: E731
        size = self.size or height
        x = to_unit_float(images)
        flips = torch.rand(n, generator=generator, device=self.device) < col("flip_p").view(-1)
        if self.uses["crop"] or size != height or size != width:
            x = self._crop_flip(x, flips, size, values, generator)
        elif self.uses["flip_p"] > 0:
            x = torch.where(flips.view(n, 1, 1, 1), x.flip(-1), x)
        if self.uses["jitter_p"] > 0:
            x = self._jitter(x, col, generator)
        if self.uses["grayscale_p"] > 0:
            grey = torch.rand(n, 1, 1, 1, generator=generator, device=self.device) < col("grayscale_p")
            x = torch.where(grey, self._grey(x).expand_as(x), x)
        if self.uses["blur_p"] > 0:
            x = self._blur(x, col, generator)
        if self.uses["solarize_p"] > 0:
            sol = torch.rand(n, 1, 1, 1, generator=generator, device=self.device) < col("solarize_p")
            x = torch.where(sol & (x >= 0.5), 1.0 - x, x)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    # ----------------------------------------------------------------- geometry
    def _crop_flip(
        self, x: torch.Tensor, flips: torch.Tensor, size: int, values: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """Crop, resize and flip in one grid_sample (align_corners=False, like a resize); bicubic
        results are clamped to [0, 1] as an 8-bit image's would be."""
        n, _, height, width = x.shape
        full = (
            torch.zeros(n, device=self.device),
            torch.zeros(n, device=self.device),
            torch.full((n,), float(height), device=self.device),
            torch.full((n,), float(width), device=self.device),
        )
        if self.uses["crop"]:
            column = lambda name: values[:, _COLUMNS.index(name)].view(-1, 1)  # noqa: E731
            boxes = sample_crop_boxes(
                n, height, width, (column("scale_lo"), column("scale_hi")), self.crop_ratio, gen, self.device
            ).unbind(1)
            cropped = values[:, _COLUMNS.index("crop")] > 0
            top, left, h, w = (torch.where(cropped, b, f) for b, f in zip(boxes, full))
        else:
            top, left, h, w = full
        theta = torch.zeros(n, 2, 3, device=self.device)
        theta[:, 0, 0] = torch.where(flips, -w / width, w / width)
        theta[:, 0, 2] = (2 * left + w) / width - 1
        theta[:, 1, 1] = h / height
        theta[:, 1, 2] = (2 * top + h) / height - 1
        grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
        out = F.grid_sample(x, grid, mode=self.interpolation, padding_mode="border", align_corners=False)
        return out.clamp_(0.0, 1.0) if self.interpolation == "bicubic" else out

    # -------------------------------------------------------------------- colour
    def _grey(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.luma).sum(dim=1, keepdim=True)

    def _jitter(self, x: torch.Tensor, col: Callable[[str], torch.Tensor], gen: torch.Generator) -> torch.Tensor:
        """ColorJitter with per-sample factors (identity where the p-coin says no), in a random order.
        A factor of strength s is uniform in [max(0, 1 - s), 1 + s] (hue: [-s, s]), as torchvision's."""
        n = x.shape[0]
        u = torch.rand(n, 5, generator=gen, device=self.device)
        apply = u[:, 4].view(n, 1, 1, 1) < col("jitter_p")

        def factor(column: int, name: str, centre: float = 1.0) -> torch.Tensor:
            spread = col(name)
            low = torch.clamp(centre - spread, min=0.0) if centre else -spread
            value = low + (centre + spread - low) * u[:, column].view(n, 1, 1, 1)
            return torch.where(apply, value, torch.full_like(value, centre))

        ops = []
        if self.uses["brightness"] > 0:
            ops.append(lambda t: (t * factor(0, "brightness")).clamp_(0, 1))
        if self.uses["contrast"] > 0:
            ops.append(lambda t: _blend(t, self._grey(t).mean(dim=(2, 3), keepdim=True), factor(1, "contrast")))
        if self.uses["saturation"] > 0:
            ops.append(lambda t: _blend(t, self._grey(t), factor(2, "saturation")))
        if self.uses["hue"] > 0:
            ops.append(lambda t: _shift_hue(t, factor(3, "hue", centre=0.0)))
        for i in self.order_rng.sample(range(len(ops)), len(ops)):
            x = ops[i](x)
        return x

    def _blur(self, x: torch.Tensor, col: Callable[[str], torch.Tensor], gen: torch.Generator) -> torch.Tensor:
        """Gaussian blur with a per-sample sigma, as one grouped separable convolution. solo-learn blurs
        with PIL's GaussianBlur(radius=sigma), whose support grows with sigma whatever the image size:
        the kernel reaches 3 sigma (of the largest sigma), with edge pixels repeated as PIL does."""
        n, c, height, _ = x.shape
        u = torch.rand(n, 2, generator=gen, device=self.device)
        lo, hi = col("sigma_lo").view(-1), col("sigma_hi").view(-1)
        sigma = lo + (hi - lo) * u[:, 0]
        sigma = torch.where(u[:, 1] < col("blur_p").view(-1), sigma, torch.full_like(sigma, 1e-3))
        radius = max(1, math.ceil(3 * self.sigma_max))
        t = torch.arange(-radius, radius + 1, device=self.device, dtype=x.dtype)
        kernel = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None] ** 2))
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (n*c, k)
        flat = x.reshape(1, n * c, height, -1)
        flat = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
        flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
        flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)
        return flat.reshape_as(x)


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return (ratio * x + (1 - ratio) * other).clamp_(0, 1)


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `shift` (fraction of a turn) through HSV, per sample."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    flat = delta == 0
    safe_delta = torch.where(flat, torch.ones_like(delta), delta)
    sat = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    rc, gc, bc = (maxc - r) / safe_delta, (maxc - g) / safe_delta, (maxc - b) / safe_delta
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(flat, torch.zeros_like(hue), hue)
    hue = torch.remainder(hue / 6.0 + shift.squeeze(1), 1.0)
    # HSV -> RGB in closed form: channel = v - v*s*clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6
    offsets = torch.arange(5.0, 0.0, -2.0, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)  # 5, 3, 1
    k = torch.remainder(offsets + 6.0 * hue.unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return maxc.unsqueeze(1) * (1.0 - sat.unsqueeze(1) * ramp)
