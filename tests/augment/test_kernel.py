"""Batched augmentation: presets and per-method recipes, a pipeline per view, crop boxes against
torchvision's RandomResizedCrop, colour ops against torchvision.transforms.functional, blur against
PIL's GaussianBlur (solo-learn's), determinism per generator, and parameter checks."""

from __future__ import annotations

import colorsys
import math

import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import RandomResizedCrop

import benchmark.augment.kernel as kernel
from benchmark.augment import (
    LARGE_IMAGE_SIZE,
    LUMA,
    AugmentParams,
    BatchAugment,
    StrongRecipe,
    ViewPair,
    normalize,
    resolve_aug_params,
    sample_crop_boxes,
)
from benchmark.errors import ConfigError
from benchmark.methods import METHODS

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
ZERO, ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def strong(method: str = "simclr") -> StrongRecipe:
    """The method's own strong recipe, which the caller hands to resolve_aug_params."""
    return METHODS.get(method).recipe.strong


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, size: int = 8, seed: int = 0, low: int = 0, high: int = 256) -> torch.Tensor:
    """Random uint8 NHWC images."""
    return torch.randint(low, high, (n, size, size, 3), generator=gen(seed), dtype=torch.uint8)


def augmenter(preset: str = "none", image_size: int = 8, mean=MEAN, std=STD, **overrides) -> BatchAugment:
    """The preset for `image_size` with `overrides` (aug_args, e.g. size=... for the output side)."""
    return BatchAugment(resolve_aug_params(preset, overrides, image_size, strong()), mean, std)


def as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1] (the augmenter's working space with mean 0 / std 1)."""
    return x.permute(0, 3, 1, 2).float() / 255


# ----------------------------------------------------------------------------- presets
def test_none_is_normalisation_only():
    x = images(16, seed=1)
    aug = augmenter("none")
    out = aug(x, gen(0))
    assert out.dtype == torch.float32 and out.shape == (16, 3, 8, 8)
    assert out.is_contiguous(memory_format=torch.channels_last)
    expected = normalize(x, aug.mean, aug.std)
    assert torch.equal(out, expected)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (as_float(x) - mean) / std, rtol=1e-6, atol=1e-6)


def test_normalize_layout():
    x = images(2, size=5, seed=2)
    out = normalize(x, torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1))
    assert out.shape == (2, 3, 5, 5) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out[1, 2, 3, 4], x[1, 3, 4, 2].float() / 255)


def test_weak_flips_half_the_images_exactly():
    n = 4000
    x = images(n, size=4, seed=3)
    x[:, :, 0, :] = 0  # every image asymmetric left/right, so a flip is always visible
    x[:, :, -1, :] = 255
    aug = augmenter("weak", image_size=4)
    assert aug.params.flip_p == 0.5 and not aug.params.crop
    out = aug(x, gen(4))
    plain = normalize(x, aug.mean, aug.std)
    same = (out == plain).flatten(1).all(dim=1)
    mirrored = (out == plain.flip(-1)).flatten(1).all(dim=1)
    assert not (same & mirrored).any()
    assert (same | mirrored).all()
    assert 0.46 <= mirrored.float().mean().item() <= 0.54


def test_flip_p_one_and_zero():
    x = images(8, seed=5)
    plain = normalize(x, torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1))
    assert torch.equal(augmenter("none", flip_p=1.0, mean=ZERO, std=ONE)(x, gen(0)), plain.flip(-1))
    assert torch.equal(augmenter("weak", flip_p=0.0, mean=ZERO, std=ONE)(x, gen(0)), plain)


@pytest.mark.parametrize("method", METHODS.names())
def test_weak_crop_and_none_mean_the_same_for_every_method(method):
    assert resolve_aug_params("none", {}, 32, strong(method)) == ViewPair.both(AugmentParams())
    assert resolve_aug_params("weak", {}, 32, strong(method)) == ViewPair.both(AugmentParams(flip_p=0.5))
    assert resolve_aug_params("crop", {}, 32, strong(method)) == ViewPair.both(AugmentParams(flip_p=0.5, crop=True))


def test_strong_is_each_methods_reference_pipeline():
    """solo-learn's CIFAR files below 96 px, its ImageNet-100 files from 96 px (the values are pinned
    against their sources in tests/methods/test_recipes.py)."""
    simclr = resolve_aug_params("strong", {}, 32, strong("simclr"))
    assert simclr.symmetric and simclr.view1.blur_p == 0.5
    assert (simclr.view1.brightness, simclr.view1.contrast, simclr.view1.saturation, simclr.view1.hue) == (
        0.8,
        0.8,
        0.8,
        0.2,
    )
    for method in ("byol", "nnclr", "barlow"):
        pair = resolve_aug_params("strong", {}, 32, strong(method))
        assert (pair.view1.solarize_p, pair.view2.solarize_p) == (0.0, 0.2)
        assert (pair.view1.blur_p, pair.view2.blur_p) == (0.0, 0.0)
        large = resolve_aug_params("strong", {}, LARGE_IMAGE_SIZE, strong(method))
        assert (large.view1.blur_p, large.view2.blur_p) == (1.0, 0.1)
        assert resolve_aug_params("strong", {}, LARGE_IMAGE_SIZE - 1, strong(method)) == pair
    vicreg = resolve_aug_params("strong", {}, 32, strong("vicreg"))
    assert vicreg.symmetric and vicreg.view1.crop_scale == (0.2, 1.0) and vicreg.view1.solarize_p == 0.1
    assert resolve_aug_params("strong", {}, 224, strong("vicreg")).view1.blur_p == 0.5


def test_overrides_set_both_views_or_one():
    pair = resolve_aug_params("strong", {"blur_p": 1.0}, 32, strong("byol"))  # plain keys win in both views
    assert (pair.view1.blur_p, pair.view2.blur_p) == (1.0, 1.0)
    pair = resolve_aug_params("strong", {"solarize_p": 0.0, "view2": {"solarize_p": 0.5}}, 32, strong("byol"))
    assert (pair.view1.solarize_p, pair.view2.solarize_p) == (0.0, 0.5)
    pair = resolve_aug_params("weak", {"view1": {"jitter_p": 1.0, "crop_scale": [0.5, 1]}}, 32)
    assert (pair.view1.jitter_p, pair.view2.jitter_p) == (1.0, 0.0) and pair.view1.crop_scale == (0.5, 1.0)
    with pytest.raises(ConfigError, match="must share size, interpolation.*size 16 vs None"):
        resolve_aug_params("weak", {"view1": {"size": 16, "interpolation": "bilinear"}}, 32)
    with pytest.raises(ConfigError, match="aug_args.view2 must be a mapping"):
        resolve_aug_params("weak", {"view2": 0.5}, 32)
    with pytest.raises(ConfigError, match=r"aug_args.view2.solarize_p must be in \[0, 1\], got 2.0"):
        resolve_aug_params("weak", {"view2": {"solarize_p": 2}}, 32)
    with pytest.raises(ConfigError, match="unknown aug_args.view1 key 'flip'"):
        resolve_aug_params("weak", {"view1": {"flip": 0.5}}, 32)


def test_each_half_of_the_batch_takes_its_views_pipeline():
    """train.py stacks anchors then positives: rows of the first half are view1's, of the second view2's."""
    x = images(16, seed=30)
    pair = resolve_aug_params("none", {"view2": {"solarize_p": 1.0, "flip_p": 1.0}}, 8)
    out = BatchAugment(pair, ZERO, ONE)(x, gen(0))
    plain = as_float(x)
    torch.testing.assert_close(out[:8], plain[:8], rtol=0, atol=0)
    torch.testing.assert_close(out[8:], TF.solarize(plain[8:], 0.5).flip(-1), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="even batch"):
        BatchAugment(pair, ZERO, ONE)(x[:5], gen(0))
    with pytest.raises(ValueError, match="different pipelines"):
        BatchAugment(pair, ZERO, ONE).params  # noqa: B018
    # per-view crop scales: view1 keeps the whole image, view2 crops
    pair = resolve_aug_params(
        "crop", {"flip_p": 0.0, "interpolation": "bilinear", "view1": {"crop_scale": [1, 1]}, "crop_ratio": [1, 1]}, 8
    )
    out = BatchAugment(pair, ZERO, ONE)(images(200, seed=31), gen(1))
    torch.testing.assert_close(out[:100], as_float(images(200, seed=31))[:100], rtol=0, atol=1e-5)
    assert (out[100:] - as_float(images(200, seed=31))[100:]).abs().flatten(1).amax(1).gt(1e-3).float().mean() > 0.8


# ----------------------------------------------------------------------------- geometry
def test_crop_boxes_inside_image_and_within_scale_and_ratio():
    height, width, scale, ratio = 200, 300, (0.2, 0.5), (3 / 4, 4 / 3)
    boxes = sample_crop_boxes(5000, height, width, scale, ratio, gen(6), torch.device("cpu"))
    assert boxes.shape == (5000, 4)
    assert torch.equal(boxes, boxes.round())
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    # every draw fits here (0.5 x 4/3 < 1), so every box honours the bounds up to pixel rounding
    fraction = h * w / (height * width)
    slack = 0.5 * (height + width + 1) / (height * width)
    assert fraction.min() >= scale[0] - slack and fraction.max() <= scale[1] + slack
    assert fraction.min() < scale[0] + 0.01 and fraction.max() > scale[1] - 0.01  # the range is covered
    aspect = w / h
    assert aspect.min() >= ratio[0] * 0.98 and aspect.max() <= ratio[1] * 1.02
    # positions are uniform over the slack: the mean offset is about half of it
    assert ((top / (height - h).clamp(min=1)).mean() - 0.5).abs() < 0.02
    assert ((left / (width - w).clamp(min=1)).mean() - 0.5).abs() < 0.02


def torchvision_boxes(n, height, width, scale, ratio, seed):
    torch.manual_seed(seed)
    image = torch.zeros(3, height, width)
    return torch.tensor(
        [RandomResizedCrop.get_params(image, list(scale), list(ratio)) for _ in range(n)], dtype=torch.float32
    )


@pytest.mark.parametrize("height, width, scale", [(32, 32, (0.08, 1.0)), (24, 40, (0.3, 1.0))])
def test_crop_boxes_distribution_matches_torchvision(height, width, scale):
    n, ratio = 20000, (3 / 4, 4 / 3)
    ours = sample_crop_boxes(n, height, width, scale, ratio, gen(7), torch.device("cpu"))
    theirs = torchvision_boxes(n, height, width, scale, ratio, seed=8)
    stats = {}
    for name, boxes in (("ours", ours), ("theirs", theirs)):
        top, left, h, w = boxes.unbind(1)
        stats[name] = {
            "area": (h * w / (height * width)).mean().item(),
            "log_aspect": torch.log(w / h).mean().item(),
            "abs_log_aspect": torch.log(w / h).abs().mean().item(),
            "h": (h / height).mean().item(),
            "w": (w / width).mean().item(),
            "centre_y": ((top + h / 2) / height).mean().item(),
            "centre_x": ((left + w / 2) / width).mean().item(),
            "full": ((h == height) & (w == width)).float().mean().item(),
        }
    for key in stats["ours"]:
        assert stats["ours"][key] == pytest.approx(stats["theirs"][key], abs=0.01), key
    q = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    ours_area, theirs_area = (b[:, 2] * b[:, 3] / (height * width) for b in (ours, theirs))
    torch.testing.assert_close(ours_area.quantile(q), theirs_area.quantile(q), rtol=0, atol=0.02)


def test_crop_boxes_fallback_is_torchvision_centre_crop():
    # nothing can fit: the full area with an aspect ratio far from the image's own
    cases = [
        ((32, 20), (1.5, 2.0), (9, 0, 13, 20)),
        ((20, 32), (0.5, 0.6), (0, 10, 20, 12)),
        ((30, 30), (1.5, 2.0), (5, 0, 20, 30)),
        ((30, 30), (0.25, 0.5), (0, 7, 30, 15)),
    ]
    for (height, width), ratio, box in cases:
        ours = sample_crop_boxes(50, height, width, (1.0, 1.0), ratio, gen(9), torch.device("cpu"))
        torch.manual_seed(0)
        expected = RandomResizedCrop.get_params(torch.zeros(3, height, width), [1.0, 1.0], list(ratio))
        assert tuple(expected) == box
        assert (ours == torch.tensor(expected, dtype=ours.dtype)).all(), (height, width, ours[0], expected)


def test_full_crop_is_identity_and_flip_is_mirror():
    x = images(6, size=16, seed=10)
    plain = normalize(x, torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1))
    for interpolation in ("bilinear", "bicubic"):  # at the pixel centres both kernels are the identity
        kw = dict(
            image_size=16, mean=ZERO, std=ONE, crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], interpolation=interpolation
        )
        out = augmenter("crop", flip_p=0.0, **kw)(x, gen(0))
        torch.testing.assert_close(out, plain, rtol=0, atol=1e-5)
        assert out.is_contiguous(memory_format=torch.channels_last)
        out = augmenter("crop", flip_p=1.0, **kw)(x, gen(0))
        torch.testing.assert_close(out, plain.flip(-1), rtol=0, atol=1e-5)


def test_crop_box_is_cut_out_and_resized_exactly(monkeypatch):
    """A box of the output size is a plain slice; twice the output size averages 2x2 blocks."""
    x = images(3, size=16, seed=11)
    plain = as_float(x)
    boxes = torch.tensor([[2.0, 4.0, 8.0, 8.0], [0.0, 0.0, 8.0, 8.0], [8.0, 6.0, 8.0, 8.0]])
    monkeypatch.setattr(kernel, "sample_crop_boxes", lambda n, *a, **k: boxes[:n])
    aug = BatchAugment(
        resolve_aug_params("crop", {"flip_p": 0.0, "size": 8, "interpolation": "bilinear"}, 16), ZERO, ONE
    )
    out = aug(x, gen(0))
    assert out.shape == (3, 3, 8, 8)
    for i, (top, left, h, w) in enumerate(boxes.int().tolist()):
        torch.testing.assert_close(out[i], plain[i, :, top : top + h, left : left + w], rtol=0, atol=1e-5)
    aug = BatchAugment(
        resolve_aug_params("crop", {"flip_p": 1.0, "size": 8, "interpolation": "bilinear"}, 16), ZERO, ONE
    )
    out = aug(x, gen(0))
    for i, (top, left, h, w) in enumerate(boxes.int().tolist()):
        torch.testing.assert_close(out[i], plain[i, :, top : top + h, left : left + w].flip(-1), rtol=0, atol=1e-5)
    # the whole 16 x 16 image onto 8 x 8: bilinear at the centre of each 2 x 2 block = its mean
    monkeypatch.setattr(kernel, "sample_crop_boxes", lambda n, *a, **k: torch.tensor([[0.0, 0.0, 16.0, 16.0]] * n))
    aug = BatchAugment(
        resolve_aug_params("crop", {"flip_p": 0.0, "size": 8, "interpolation": "bilinear"}, 16), ZERO, ONE
    )
    torch.testing.assert_close(aug(x, gen(0)), torch.nn.functional.avg_pool2d(plain, 2), rtol=0, atol=1e-5)


def test_size_resizes_without_crop():
    x = images(4, size=16, seed=12)
    out = augmenter("none", image_size=16, mean=ZERO, std=ONE, size=8, interpolation="bilinear")(x, gen(0))
    assert out.shape == (4, 3, 8, 8)
    torch.testing.assert_close(out, torch.nn.functional.avg_pool2d(as_float(x), 2), rtol=0, atol=1e-5)


def test_bicubic_upsampling_matches_torch_bicubic_inside_the_crop():
    """A crop of half the side, upsampled x2: away from the crop's border (where the kernel reads the
    image's pixels beyond the crop instead of repeating its edge) it equals bicubic interpolation of
    the cut-out, clamped to [0, 1] as an 8-bit image would be."""
    x = images(3, size=16, seed=32)
    monkey_boxes = torch.tensor([[4.0, 2.0, 8.0, 8.0]] * 3)
    original = kernel.sample_crop_boxes
    kernel.sample_crop_boxes = lambda n, *a, **k: monkey_boxes[:n]
    try:
        out = augmenter("crop", image_size=16, mean=ZERO, std=ONE, flip_p=0.0)(x, gen(0))
    finally:
        kernel.sample_crop_boxes = original
    cut = as_float(x)[:, :, 4:12, 2:10]
    expected = torch.nn.functional.interpolate(cut, size=(16, 16), mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(out[:, :, 3:-3, 3:-3], expected[:, :, 3:-3, 3:-3], rtol=0, atol=1e-5)
    assert out.min() >= 0 and out.max() <= 1


# ------------------------------------------------------------------------------- colour
def test_grayscale_p_one_gives_equal_channels_with_luma_weights():
    x = images(8, seed=13)
    out = augmenter("none", mean=ZERO, std=ONE, grayscale_p=1.0)(x, gen(0))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    luma = torch.tensor(LUMA).view(1, 3, 1, 1)
    torch.testing.assert_close(out[:, :1], (as_float(x) * luma).sum(1, keepdim=True), rtol=0, atol=1e-6)
    torch.testing.assert_close(out, TF.rgb_to_grayscale(as_float(x), 3), rtol=0, atol=1e-3)
    # grayscale_p = 0.5: each image is either untouched or grey
    out = augmenter("none", mean=ZERO, std=ONE, grayscale_p=0.5)(images(200, seed=14), gen(1))
    grey = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(1).all(1)
    assert 0.3 < grey.float().mean() < 0.7
    assert torch.equal(out[~grey], as_float(images(200, seed=14))[~grey])


def test_jitter_with_p_zero_is_identity():
    x = images(16, seed=15)
    plain = augmenter("none")(x, gen(0))
    assert torch.equal(augmenter("none", jitter_p=0.0, brightness=0.9, hue=0.5)(x, gen(0)), plain)
    # p > 0 but the coin never lands: every factor is neutral; only the HSV round trip's rounding remains
    out = augmenter("none", jitter_p=1e-12)(x, gen(0))
    torch.testing.assert_close(out, plain, rtol=0, atol=1e-5)


def mid_range_images(n, seed):
    """Values in [0.3, 0.6]: no factor in [0.6, 1.4] pushes them out of [0, 1], so no clamping."""
    return images(n, seed=seed, low=77, high=153)


def test_brightness_scales_each_image_by_one_factor_in_range():
    x = mid_range_images(64, seed=16)
    out = augmenter("none", mean=ZERO, std=ONE, jitter_p=1.0, contrast=0.0, saturation=0.0, hue=0.0)(x, gen(1))
    ratio = out / as_float(x)
    per_image = ratio.flatten(1)
    torch.testing.assert_close(per_image, per_image[:, :1].expand_as(per_image), rtol=1e-5, atol=1e-5)
    factors = per_image[:, 0]
    assert factors.min() >= 0.6 - 1e-5 and factors.max() <= 1.4 + 1e-5
    assert factors.std() > 0.1  # really random per sample


def blend_factors(out: torch.Tensor, x: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """Per-image f with out = f x + (1 - f) anchor, checking that a single f fits every value."""
    ratio = ((out - anchor) / (x - anchor)).flatten(1)
    usable = (x - anchor).abs().flatten(1) > 0.05  # away from 0/0
    f = torch.stack([r[u].median() for r, u in zip(ratio, usable)])
    torch.testing.assert_close(out, f.view(-1, 1, 1, 1) * x + (1 - f.view(-1, 1, 1, 1)) * anchor, rtol=0, atol=1e-5)
    return f


def test_contrast_blends_with_mean_grey_and_saturation_with_grey():
    """torchvision's adjust_contrast / adjust_saturation: blend with the image's mean grey level /
    with its per-pixel grey, by one factor per image in [1 - s, 1 + s]."""
    x = mid_range_images(32, seed=17)
    xf = as_float(x)
    grey = (xf * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    out = augmenter("none", mean=ZERO, std=ONE, jitter_p=1.0, brightness=0.0, saturation=0.0, hue=0.0)(x, gen(2))
    f = blend_factors(out, xf, grey.mean((2, 3), keepdim=True))
    assert f.min() >= 0.6 - 1e-4 and f.max() <= 1.4 + 1e-4 and f.std() > 0.1
    for i in range(4):
        torch.testing.assert_close(out[i], TF.adjust_contrast(xf[i], f[i].item()), rtol=0, atol=1e-3)
    out = augmenter("none", mean=ZERO, std=ONE, jitter_p=1.0, brightness=0.0, contrast=0.0, hue=0.0)(x, gen(3))
    f = blend_factors(out, xf, grey)
    assert f.min() >= 0.8 - 1e-4 and f.max() <= 1.2 + 1e-4 and f.std() > 0.05
    for i in range(4):
        torch.testing.assert_close(out[i], TF.adjust_saturation(xf[i], f[i].item()), rtol=0, atol=1e-3)


def test_shift_hue_matches_torchvision_adjust_hue():
    n = 12
    x = torch.rand(n, 3, 6, 7, generator=gen(18))
    x[0] = 0.0  # black
    x[1] = 0.5  # grey: no hue
    x[2, 0] = x[2, 1]  # ties: max on both r and g
    x[3, 1] = x[3, 2]  # ties on g and b
    x[4, :, :, :3] = 1.0  # white patch
    shifts = torch.linspace(-0.5, 0.5, n)
    got = kernel._shift_hue(x, shifts.view(n, 1, 1, 1))
    for i in range(n):
        expected = TF.adjust_hue(x[i], shifts[i].item())
        torch.testing.assert_close(got[i], expected, rtol=0, atol=1e-5, msg=f"sample {i}, shift {shifts[i]}")
    torch.testing.assert_close(kernel._shift_hue(x, torch.zeros(n, 1, 1, 1)), x, rtol=0, atol=1e-5)


def test_hue_jitter_path_matches_adjust_hue_per_sample():
    """Hue alone at p=1: each output is adjust_hue of its input by its own shift, uniform in [-hue, hue].
    Pixel (0, 0) of every image is a saturated reference colour whose hue reveals the shift."""
    n, hue = 200, 0.25
    x = images(n, seed=19)
    x[:, 0, 0] = torch.tensor([255, 51, 0], dtype=torch.uint8)  # hue 1/30
    out = augmenter("none", mean=ZERO, std=ONE, jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=hue)(
        x, gen(4)
    )
    h_in = colorsys.rgb_to_hsv(1.0, 0.2, 0.0)[0]
    shifts = []
    for i in range(n):
        h_out = colorsys.rgb_to_hsv(*out[i, :, 0, 0].double().tolist())[0]
        shift = (h_out - h_in + 0.5) % 1.0 - 0.5
        shifts.append(shift)
        if i < 20:
            torch.testing.assert_close(out[i], TF.adjust_hue(as_float(x)[i], shift), rtol=0, atol=1e-5)
    shifts = torch.tensor(shifts)
    assert shifts.abs().max() <= hue + 1e-5
    assert shifts.min() < -0.8 * hue and shifts.max() > 0.8 * hue
    assert shifts.mean().abs() < 0.03 and shifts.std() == pytest.approx(2 * hue / math.sqrt(12), rel=0.15)


def test_solarize_inverts_bright_pixels():
    x = images(8, seed=20)
    out = augmenter("none", mean=ZERO, std=ONE, solarize_p=1.0)(x, gen(0))
    expected = TF.solarize(as_float(x), 0.5)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_blur_keeps_constant_images_and_smooths_noise():
    constant = torch.full((4, 32, 32, 3), 137, dtype=torch.uint8)
    aug = augmenter("none", image_size=32, mean=ZERO, std=ONE, blur_p=1.0)
    torch.testing.assert_close(aug(constant, gen(0)), as_float(constant), rtol=0, atol=1e-6)
    noise = images(4, size=32, seed=21)
    blurred = augmenter("none", image_size=32, mean=ZERO, std=ONE, blur_p=1.0, blur_sigma=[1.0, 2.0])(noise, gen(1))
    before, after = as_float(noise).var(dim=(2, 3)), blurred.var(dim=(2, 3))
    assert (after < 0.5 * before).all()
    torch.testing.assert_close(blurred.mean(dim=(2, 3)), as_float(noise).mean(dim=(2, 3)), rtol=0, atol=0.02)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_blur_matches_pils_gaussian_blur_as_solo_learn_applies_it(sigma):
    """solo-learn blurs a 32 px image with PIL's GaussianBlur(radius=sigma) (three box blurs that
    approximate a Gaussian of std sigma); ours is the exact Gaussian, truncated at 3 sigma. On smooth
    and on noisy images the two agree to about one grey level on average and within four away from
    the border (where PIL's box passes treat the edge differently)."""
    from PIL import Image, ImageFilter

    x = images(4, size=32, seed=22)
    x[:2] = (
        torch.nn.functional.avg_pool2d(x[:2].permute(0, 3, 1, 2).float(), 5, 1, 2).round().byte().permute(0, 2, 3, 1)
    )
    out = augmenter("none", image_size=32, mean=ZERO, std=ONE, blur_p=1.0, blur_sigma=[sigma, sigma])(x, gen(2))
    pil = torch.stack(
        [
            torch.tensor(
                list(Image.fromarray(img.numpy()).filter(ImageFilter.GaussianBlur(radius=sigma)).getdata()),
                dtype=torch.float32,
            ).view(32, 32, 3)
            for img in x
        ]
    )
    diff = (out * 255 - pil.permute(0, 3, 1, 2)).abs()
    inner = math.ceil(3 * sigma)
    assert diff.mean() < 1.5 and diff[:, :, inner:-inner, inner:-inner].max() < 4, (diff.mean(), diff.max())


def test_blur_p_zero_point_five_blurs_about_half():
    x = images(200, size=32, seed=23)
    out = augmenter("none", image_size=32, mean=ZERO, std=ONE, blur_p=0.5, blur_sigma=[1.0, 2.0])(x, gen(3))
    untouched = (out - as_float(x)).abs().flatten(1).amax(1) < 1e-6
    assert 0.35 < untouched.float().mean() < 0.65


# -------------------------------------------------------------------------- determinism
def test_same_seed_same_output_different_seed_different():
    x = images(16, size=32, seed=24)

    def fresh(seed: int) -> torch.Tensor:  # a new augmenter: its jitter-order stream starts over
        return augmenter("strong", image_size=32)(x, gen(seed))

    a, b, c = fresh(5), fresh(5), fresh(6)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert torch.isfinite(a).all() and a.shape == (16, 3, 32, 32)
    assert a.is_contiguous(memory_format=torch.channels_last)
    # the global RNG plays no part
    torch.manual_seed(123)
    d = fresh(5)
    torch.manual_seed(456)
    assert torch.equal(d, fresh(5)) and torch.equal(a, d)


def test_jitter_order_comes_from_the_augmenters_own_seed():
    """The order of the colour ops is drawn on the host from `seed` (no device read-back): same seed,
    same outputs call after call; another seed, another order somewhere in a few calls."""
    x = images(16, size=32, seed=24)
    params = resolve_aug_params("strong", {"jitter_p": 1.0}, 32, strong("byol"))
    one, same, other = (BatchAugment(params, MEAN, STD, seed=s) for s in (1, 1, 2))
    outputs = [(one(x, gen(i)), same(x, gen(i)), other(x, gen(i))) for i in range(4)]
    assert all(torch.equal(a, b) for a, b, _ in outputs)
    assert any(not torch.allclose(a, c) for a, _, c in outputs)


@pytest.mark.parametrize("method", METHODS.names())
def test_strong_output_stays_in_normalised_range(method):
    x = images(64, size=32, seed=25)
    aug = BatchAugment(resolve_aug_params("strong", {"blur_p": 0.5}, 32, strong(method)), ZERO, ONE)
    out = aug(x, gen(7))
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6


# ------------------------------------------------------------------------------ params
def test_resolve_aug_params_coerces_values():
    params = resolve_aug_params("weak", {"flip_p": 1, "crop_scale": [0.5, 1], "size": 24, "crop": True}, 32).view1
    assert params.flip_p == 1.0 and isinstance(params.flip_p, float)
    assert params.crop_scale == (0.5, 1.0) and params.size == 24 and params.crop is True


def test_resolve_aug_params_rejects_unknown_key():
    with pytest.raises(ConfigError) as err:
        resolve_aug_params("strong", {"flip_prob": 0.5}, 32, strong())
    message = str(err.value)
    assert "unknown aug_args key 'flip_prob'" in message and "did you mean 'flip_p'" in message
    for valid in ("blur_p", "crop_scale", "grayscale_p", "hue", "jitter_p", "size", "solarize_p", "view1", "view2"):
        assert valid in message


def test_resolve_aug_params_rejects_unknown_preset():
    with pytest.raises(ConfigError, match="unknown augmentation 'strongest'.*crop, none, strong, weak"):
        resolve_aug_params("strongest", {}, 32)


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        ({"flip_p": 1.5}, ["aug_args.flip_p must be in [0, 1], got 1.5"]),
        ({"grayscale_p": -0.1}, ["aug_args.grayscale_p must be in [0, 1], got -0.1"]),
        ({"jitter_p": 2, "blur_p": -1}, ["aug_args.jitter_p must be in [0, 1]", "aug_args.blur_p must be in [0, 1]"]),
        ({"solarize_p": True}, ["aug_args.solarize_p must be a number, got True"]),
        ({"hue": 0.6}, ["aug_args.hue must be in [0, 0.5], got 0.6"]),
        ({"brightness": -0.1}, ["aug_args.brightness must be >= 0"]),
        ({"crop_scale": [0.5]}, ["aug_args.crop_scale must be a pair [low, high], got [0.5]"]),
        ({"crop_scale": 0.5}, ["aug_args.crop_scale must be a pair"]),
        ({"crop_scale": [0.9, 0.1]}, ["aug_args.crop_scale must be (low, high) with 0 < low <= high"]),
        ({"crop_scale": [0.5, 1.5]}, ["aug_args.crop_scale must not exceed 1"]),
        ({"crop_ratio": [0.0, 1.0]}, ["aug_args.crop_ratio must be (low, high)"]),
        ({"blur_sigma": [2.0, 1.0]}, ["aug_args.blur_sigma must be (low, high)"]),
        ({"crop": 1}, ["aug_args.crop must be true or false, got 1"]),
        ({"size": 1.5}, ["aug_args.size must be an integer or null"]),
        ({"size": 0}, ["aug_args.size must be positive"]),
        ({"interpolation": "nearest"}, ["unknown aug_args.interpolation 'nearest'", "bicubic, bilinear"]),
        ({"interpolation": 3}, ["aug_args.interpolation must be one of bilinear, bicubic, got 3"]),
        ({"flip_p": "half"}, ["aug_args.flip_p must be a number, got 'half'"]),
    ],
)
def test_resolve_aug_params_rejects_bad_values(overrides, fragments):
    with pytest.raises(ConfigError) as err:
        resolve_aug_params("strong", overrides, 32, strong())
    for fragment in fragments:
        assert fragment in str(err.value)


# -------------------------------------------------------- fast paths: the same outputs as before
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("size", [32, 20, 48])
def test_small_image_crops_as_matrix_products_are_grid_samples_result(interpolation, size):
    """Small images are cropped, resized and flipped by two batched matrix products; grid_sample
    (the path of larger images) on the same boxes and flips gives the same pixels."""
    aug = BatchAugment(AugmentParams(crop=True, flip_p=0.5, interpolation=interpolation, size=size), MEAN, STD)
    x = as_float(images(64, size=32, seed=3)).contiguous()
    flips = torch.rand(64, generator=gen(4)) < 0.5
    fast = aug._crop_flip(x, flips, size, aug.table, gen(5), matrices=True)
    reference = aug._crop_flip(x, flips, size, aug.table, gen(5), matrices=False)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)  # float rounding: 0.003 of a grey level


def test_small_image_blur_as_matrix_products_is_the_padded_convolutions_result():
    aug = BatchAugment(AugmentParams(blur_p=0.5), MEAN, STD)
    x = as_float(images(64, size=32, seed=6)).contiguous()
    col = lambda name: aug._column(aug.table, name)  # noqa: E731
    fast = aug._blur(x, col, gen(7), matrices=True)
    reference = aug._blur(x, col, gen(7), matrices=False)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)  # float rounding: 0.003 of a grey level
    assert (fast - x).abs().amax(dim=(1, 2, 3)).gt(1e-3).float().mean().item() == pytest.approx(0.5, abs=0.2)


@pytest.mark.parametrize("method", METHODS.names())
def test_every_recipe_gives_the_same_views_on_either_path(method, monkeypatch):
    """The whole pipeline, same generator: the matrix path (images up to MATRIX_MAX_SIZE) and the
    grid_sample + convolution path give the same augmented views of each method's strong recipe, so
    the speed-up leaves every draw and every output as it was, to float rounding."""
    batch = images(128, size=32, seed=8)
    views = resolve_aug_params("strong", {}, 32, METHODS.get(method).recipe.strong)
    fast = BatchAugment(views, MEAN, STD, seed=3)(batch, gen(9))
    monkeypatch.setattr(kernel, "MATRIX_MAX_SIZE", 0)
    reference = BatchAugment(views, MEAN, STD, seed=3)(batch, gen(9))
    torch.testing.assert_close(fast, reference, rtol=0, atol=5e-5)  # normalised: 0.003 of a grey level
    assert fast.is_contiguous(memory_format=torch.channels_last)
