"""Batched augmentation on the device, with per-sample random parameters and a pipeline per view.

uint8 NHWC in, normalised float NCHW (channels_last) out. One call augments both views of a batch
(the anchors' rows, then the positives' rows) with a handful of tensor ops, so the GPU is not
starved by a CPU DataLoader (see docs/design.md, Speed). Each view may have its own pipeline, as the
reference recipes do (BYOL's second view is solarised): the two views' settings sit in a small
table on the device and every op reads its row's values, so an asymmetric pair costs one call too.
What each view does is benchmark/augment/settings.py.
"""

from __future__ import annotations

import math
import random
from typing import Callable

import torch
import torch.nn.functional as F

from benchmark.augment.settings import AugmentParams, ViewPair

LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601 weights, exactly as torchvision's rgb_to_grayscale
MATRIX_MAX_SIZE = 64  # up to this side, crops and blurs are batched matrix products (BatchAugment.__call__)


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
    half view2's (PairStep, benchmark/assembly.py, stacks anchors, then positives). The colour-jitter
    order, which Python control flow needs, comes from a host RNG (`order_rng`, seeded with `seed`):
    drawing it on the device and reading it back would make the host wait for the GPU at every step."""

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
        # small images are resampled and blurred with per-sample matrices (dense: their cost grows as
        # the cube of the side), larger ones with grid_sample and a grouped convolution
        matrices = max(height, width, size) <= MATRIX_MAX_SIZE
        flips = torch.rand(n, generator=generator, device=self.device) < col("flip_p").view(-1)
        if self.uses["crop"] or size != height or size != width:
            x = self._crop_flip(_unit_planes(images), flips, size, values, generator, matrices)
        else:
            x = to_unit_float(images)
            if self.uses["flip_p"] > 0:
                x = torch.where(flips.view(n, 1, 1, 1), x.flip(-1), x)
        # from here every op may write into x: it is this call's own tensor
        if self.uses["jitter_p"] > 0:
            x = self._jitter(x, col, generator)
        if self.uses["grayscale_p"] > 0:
            grey = torch.rand(n, 1, 1, 1, generator=generator, device=self.device) < col("grayscale_p")
            x = torch.where(grey, self._grey(x), x)
        if self.uses["blur_p"] > 0:
            x = self._blur(x, col, generator, matrices)
        if self.uses["solarize_p"] > 0:
            sol = torch.rand(n, 1, 1, 1, generator=generator, device=self.device) < col("solarize_p")
            x = torch.where(sol & (x >= 0.5), 1.0 - x, x)
        normalised = torch.empty_like(x, memory_format=torch.channels_last)
        return torch.sub(x, self.mean, out=normalised).div_(self.std)

    # ----------------------------------------------------------------- geometry
    def _crop_flip(
        self,
        x: torch.Tensor,
        flips: torch.Tensor,
        size: int,
        values: torch.Tensor,
        gen: torch.Generator,
        matrices: bool = True,
    ) -> torch.Tensor:
        """Crop, resize and flip: grid_sample (align_corners=False, border padding) on the axis-aligned
        affine grid of each box; for small images the same as two batched matrix products (columns,
        then rows), since such a grid samples each output column at one source x and each row at one
        source y. Bicubic results are clamped to [0, 1] as an 8-bit image's would be."""
        n, channels, height, width = x.shape
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
        if not matrices:
            theta = torch.zeros(n, 2, 3, device=self.device)
            theta[:, 0, 0] = torch.where(flips, -w / width, w / width)
            theta[:, 0, 2] = (2 * left + w) / width - 1
            theta[:, 1, 1] = h / height
            theta[:, 1, 2] = (2 * top + h) / height - 1
            grid = F.affine_grid(theta, [n, channels, size, size], align_corners=False)
            out = F.grid_sample(x, grid, mode=self.interpolation, padding_mode="border", align_corners=False)
            return out.clamp_(0.0, 1.0) if self.interpolation == "bicubic" else out
        # affine_grid's x = theta00 * base + theta02 (theta01 = 0), base = the output pixel centres in [-1, 1]
        base = (2 * torch.arange(size, device=self.device, dtype=x.dtype) + 1) / size - 1
        grid_x = torch.where(flips, -w / width, w / width)[:, None] * base + ((2 * left + w) / width - 1)[:, None]
        grid_y = (h / height)[:, None] * base + ((2 * top + h) / height - 1)[:, None]
        columns = interpolation_matrix(grid_x, width, self.interpolation)  # (n, size, width)
        rows = interpolation_matrix(grid_y, height, self.interpolation)  # (n, size, height)
        out = torch.bmm(x.view(n, channels * height, width), columns.transpose(1, 2))
        out = torch.matmul(rows.unsqueeze(1), out.view(n, channels, height, size))
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

        ops = []  # each writes into t, the call's own tensor
        if self.uses["brightness"] > 0:
            ops.append(lambda t: t.mul_(factor(0, "brightness")).clamp_(0, 1))
        if self.uses["contrast"] > 0:
            ops.append(lambda t: _blend_(t, self._grey(t).mean(dim=(2, 3), keepdim=True), factor(1, "contrast")))
        if self.uses["saturation"] > 0:
            ops.append(lambda t: _blend_(t, self._grey(t), factor(2, "saturation")))
        if self.uses["hue"] > 0:
            ops.append(lambda t: _shift_hue(t, factor(3, "hue", centre=0.0)))
        for i in self.order_rng.sample(range(len(ops)), len(ops)):
            x = ops[i](x)
        return x

    def _blur(
        self, x: torch.Tensor, col: Callable[[str], torch.Tensor], gen: torch.Generator, matrices: bool = True
    ) -> torch.Tensor:
        """Gaussian blur with a per-sample sigma, separable. solo-learn blurs with PIL's
        GaussianBlur(radius=sigma), whose support grows with sigma whatever the image size: the kernel
        reaches 3 sigma (of the largest sigma), with edge pixels repeated as PIL does. Small images
        take it as two batched matrix products (the repeated edge folded into each sample's matrix),
        larger ones as one grouped convolution over the padded image."""
        n, c, height, width = x.shape
        u = torch.rand(n, 2, generator=gen, device=self.device)
        lo, hi = col("sigma_lo").view(-1), col("sigma_hi").view(-1)
        sigma = lo + (hi - lo) * u[:, 0]
        sigma = torch.where(u[:, 1] < col("blur_p").view(-1), sigma, torch.full_like(sigma, 1e-3))
        radius = max(1, math.ceil(3 * self.sigma_max))
        t = torch.arange(-radius, radius + 1, device=self.device, dtype=x.dtype)
        kernel = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None] ** 2))
        kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (n, 2 radius + 1)
        if matrices and height == width:
            blur = _blur_matrix(kernel, height)  # (n, height, height)
            out = torch.bmm(x.reshape(n, c * height, width), blur.transpose(1, 2))
            return torch.matmul(blur.unsqueeze(1), out.view(n, c, height, width))
        kernel = kernel.repeat_interleave(c, dim=0)  # (n*c, k)
        flat = x.reshape(1, n * c, height, -1)
        flat = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
        flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
        flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)
        return flat.reshape_as(x)


def _unit_planes(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1], contiguous planes (what the crop's matrix products read)."""
    return images.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def interpolation_matrix(grid: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(n, out, size): the weights grid_sample (align_corners=False, border padding) gives each source
    pixel of a line of `size` for the output positions `grid` ((n, out), normalised to [-1, 1]): bilinear
    on the clipped coordinate; bicubic (torch's a = -0.75) on the four taps around it, each tap's index
    clipped to the line, as grid_sample reads them."""
    position = ((grid + 1) * size - 1) / 2  # grid_sampler_unnormalize
    if mode == "bilinear":
        position = position.clamp(0, size - 1)
    start = position.floor()
    t = position - start
    if mode == "bilinear":
        taps, weights = torch.arange(2, device=grid.device), torch.stack([1 - t, t], dim=-1)
    else:
        taps, weights = torch.arange(-1, 3, device=grid.device), _cubic_weights(t)
    index = (start.unsqueeze(-1) + taps).clamp_(0, size - 1).long()
    matrix = torch.zeros(*grid.shape, size, device=grid.device, dtype=grid.dtype)
    return matrix.scatter_add_(-1, index, weights)


def _blur_matrix(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """(n, size, size): each sample's 1-D kernel (n, 2r + 1) as a matrix over a line of `size` pixels,
    a tap beyond the line reading its edge pixel (replicate padding)."""
    n, taps = kernel.shape
    radius = taps // 2
    offsets = torch.arange(size, device=kernel.device)[:, None] + torch.arange(
        -radius, radius + 1, device=kernel.device
    )
    index = offsets.clamp_(0, size - 1).expand(n, size, taps)
    matrix = torch.zeros(n, size, size, device=kernel.device, dtype=kernel.dtype)
    return matrix.scatter_add_(-1, index, kernel[:, None, :].expand(n, size, taps))


CUBIC_A = -0.75  # torch's bicubic convolution coefficient (get_cubic_upsample_coefficients)


def _cubic_weights(t: torch.Tensor) -> torch.Tensor:
    """The four tap weights of torch's cubic convolution at fractional offset t (taps -1, 0, 1, 2)."""
    a = CUBIC_A

    def near(d: torch.Tensor) -> torch.Tensor:  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d: torch.Tensor) -> torch.Tensor:  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], dim=-1)


def _blend_(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """ratio * x + (1 - ratio) * other, clamped to [0, 1] (torchvision's _blend), written into x."""
    return x.mul_(ratio).add_(other * (1 - ratio)).clamp_(0, 1)


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `shift` (fraction of a turn) through HSV, per sample (torchvision's adjust_hue
    formulas; the temporaries written in place, which leaves every value as it was)."""
    r, g, b = x.unbind(1)
    maxc = x.amax(dim=1)
    minc = x.amin(dim=1)
    delta = maxc - minc
    flat = delta == 0
    safe_delta = delta.masked_fill(flat, 1.0)
    sat = delta.div_(maxc.masked_fill(maxc == 0, 1.0))
    rc, gc, bc = ((maxc - channel).div_(safe_delta) for channel in (r, g, b))
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, (2.0 + rc).sub_(bc), (4.0 + gc).sub_(rc)))
    hue = hue.masked_fill_(flat, 0.0).div_(6.0).add_(shift.squeeze(1)).remainder_(1.0)
    # HSV -> RGB in closed form: channel = v - v*s*clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6
    offsets = torch.arange(5.0, 0.0, -2.0, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)  # 5, 3, 1
    k = torch.add(offsets, 6.0 * hue.unsqueeze(1)).remainder_(6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return ramp.mul_(sat.unsqueeze(1)).neg_().add_(1.0).mul_(maxc.unsqueeze(1))
