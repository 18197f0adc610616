"""Batched augmentation on the device, with per-sample random parameters.

uint8 NHWC in, normalised float NCHW (channels_last) out. One call augments a whole batch with a
handful of tensor ops, so the GPU is not starved by a CPU DataLoader (see DESIGN.md, Speed).
Presets follow the paper: `weak` is the horizontal flip alone, `strong` the SimCLR/BYOL recipe.
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
BLUR_MIN_SIZE = 96  # the strong preset blurs only images this large (SimCLR's ImageNet recipe)


@dataclass(frozen=True)
class AugmentParams:
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

    def validate(self) -> None:
        problems = []
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"aug_args.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                problems.append(f"aug_args.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            problems.append(f"aug_args.hue must be in [0, 0.5], got {self.hue}")
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                problems.append(f"aug_args.{name} must be (low, high) with 0 < low <= high, got {getattr(self, name)}")
        if self.crop_scale[1] > 1:
            problems.append(f"aug_args.crop_scale must not exceed 1, got {self.crop_scale}")
        if self.size is not None and self.size < 1:
            problems.append(f"aug_args.size must be positive, got {self.size}")
        if problems:
            raise ConfigError("; ".join(problems))


PresetFn = Callable[[int], dict[str, Any]]
AUGMENTATIONS: Registry[PresetFn] = Registry("augmentation")

AUGMENTATIONS.register("none")(lambda size: {})
AUGMENTATIONS.register("weak")(lambda size: {"flip_p": 0.5})
AUGMENTATIONS.register("crop")(lambda size: {"flip_p": 0.5, "crop": True})
AUGMENTATIONS.register("strong")(
    lambda size: {
        "flip_p": 0.5, "crop": True, "jitter_p": 0.8, "grayscale_p": 0.2,
        "blur_p": 0.5 if size >= BLUR_MIN_SIZE else 0.0,
    }
)


def resolve_aug_params(preset: str, overrides: Mapping[str, Any], image_size: int) -> AugmentParams:
    """Preset values for this image size, then the user's overrides, type-checked."""
    values = dict(AUGMENTATIONS.get(preset)(image_size))
    known = {f.name: f for f in dataclasses.fields(AugmentParams)}
    for key, value in overrides.items():
        if key not in known:
            raise choice_error("aug_args key", key, known)
        default = getattr(AugmentParams(), key)
        if isinstance(default, tuple):
            if not (isinstance(value, (list, tuple)) and len(value) == 2):
                raise ConfigError(f"aug_args.{key} must be a pair [low, high], got {value!r}")
            value = tuple(float(v) for v in value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"aug_args.{key} must be true or false, got {value!r}")
        elif key == "size":
            if not (value is None or (isinstance(value, int) and not isinstance(value, bool))):
                raise ConfigError(f"aug_args.size must be an integer or null, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"aug_args.{key} must be a number, got {value!r}")
        else:
            value = float(value)
        values[key] = value
    params = AugmentParams(**values)
    params.validate()
    return params


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


def sample_crop_boxes(
    n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
    generator: torch.Generator, device: torch.device, attempts: int = 10,
) -> torch.Tensor:
    """torchvision's RandomResizedCrop rule, vectorised: (n, 4) boxes (top, left, h, w) in pixels.

    Each sample tries `attempts` (area, log-aspect) draws and keeps the first that fits; when none
    fits it falls back to the centre crop with the aspect ratio clamped, as torchvision does.
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
    return torch.stack([torch.where(any_fit, value, float(alt)) for value, alt in zip((top, left, h, w), fallback)],
                       dim=1)


class BatchAugment:
    """Augments a batch of uint8 NHWC images on their own device; per-sample randomness from the given
    generator. The colour-jitter order, which Python control flow needs, comes from a host RNG
    (`order_rng`, seeded with `seed`): drawing it on the device and reading it back would make the
    host wait for the GPU at every step."""

    def __init__(self, params: AugmentParams, mean, std, device: torch.device | str = "cpu", seed: int = 0):
        self.params = params
        self.device = torch.device(device)
        self.order_rng = random.Random(seed)
        self.mean = torch.tensor(mean, device=self.device, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device, dtype=torch.float32).view(1, 3, 1, 1)
        self.luma = torch.tensor(LUMA, device=self.device).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = self.params
        n, height, width, _ = images.shape
        size = p.size or height
        x = to_unit_float(images)
        flips = torch.rand(n, generator=generator, device=self.device) < p.flip_p
        if p.crop or size != height or size != width:
            x = self._crop_flip(x, flips, size, generator)
        elif p.flip_p > 0:
            x = torch.where(flips.view(n, 1, 1, 1), x.flip(-1), x)
        if p.jitter_p > 0:
            x = self._jitter(x, generator)
        if p.grayscale_p > 0:
            grey = torch.rand(n, generator=generator, device=self.device) < p.grayscale_p
            x = torch.where(grey.view(n, 1, 1, 1), self._grey(x).expand_as(x), x)
        if p.blur_p > 0:
            x = self._blur(x, generator)
        if p.solarize_p > 0:
            sol = torch.rand(n, generator=generator, device=self.device) < p.solarize_p
            x = torch.where(sol.view(n, 1, 1, 1) & (x >= 0.5), 1.0 - x, x)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    # ----------------------------------------------------------------- geometry
    def _crop_flip(self, x: torch.Tensor, flips: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
        """Crop, resize and flip in one bilinear grid_sample (align_corners=False, like a resize)."""
        n, _, height, width = x.shape
        if self.params.crop:
            top, left, h, w = sample_crop_boxes(
                n, height, width, self.params.crop_scale, self.params.crop_ratio, gen, self.device
            ).unbind(1)
        else:
            top = left = torch.zeros(n, device=self.device)
            h, w = torch.full((n,), float(height), device=self.device), torch.full((n,), float(width), device=self.device)
        theta = torch.zeros(n, 2, 3, device=self.device)
        theta[:, 0, 0] = torch.where(flips, -w / width, w / width)
        theta[:, 0, 2] = (2 * left + w) / width - 1
        theta[:, 1, 1] = h / height
        theta[:, 1, 2] = (2 * top + h) / height - 1
        grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # -------------------------------------------------------------------- colour
    def _grey(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.luma).sum(dim=1, keepdim=True)

    def _jitter(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """ColorJitter with per-sample factors (identity where the p-coin says no), in a random order."""
        p, n = self.params, x.shape[0]
        u = torch.rand(n, 5, generator=gen, device=self.device)
        apply = (u[:, 4] < p.jitter_p).view(n, 1, 1, 1)

        def factor(column: int, spread: float, centre: float = 1.0) -> torch.Tensor:
            low = max(0.0, centre - spread) if centre else -spread
            value = low + (centre + spread - low) * u[:, column].view(n, 1, 1, 1)
            return torch.where(apply, value, torch.full_like(value, centre))

        ops = []
        if p.brightness > 0:
            ops.append(lambda t: (t * factor(0, p.brightness)).clamp_(0, 1))
        if p.contrast > 0:
            ops.append(lambda t: _blend(t, self._grey(t).mean(dim=(2, 3), keepdim=True), factor(1, p.contrast)))
        if p.saturation > 0:
            ops.append(lambda t: _blend(t, self._grey(t), factor(2, p.saturation)))
        if p.hue > 0:
            ops.append(lambda t: _shift_hue(t, factor(3, p.hue, centre=0.0)))
        for i in self.order_rng.sample(range(len(ops)), len(ops)):
            x = ops[i](x)
        return x

    def _blur(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Gaussian blur with a per-sample sigma, as one grouped separable convolution."""
        n, c, height, _ = x.shape
        lo, hi = self.params.blur_sigma
        u = torch.rand(n, 2, generator=gen, device=self.device)
        sigma = lo + (hi - lo) * u[:, 0]
        sigma = torch.where(u[:, 1] < self.params.blur_p, sigma, torch.full_like(sigma, 1e-3))
        radius = max(1, int(0.1 * height) // 2)
        t = torch.arange(-radius, radius + 1, device=self.device, dtype=x.dtype)
        kernel = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None] ** 2))
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (n*c, k)
        flat = x.reshape(1, n * c, height, -1)
        flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
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
