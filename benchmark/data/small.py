"""Datasets that need no files: scikit-learn's bundled digits (the offline default) and a synthetic set."""

from __future__ import annotations

import numpy as np

from benchmark.data.base import DATASETS, NATIVE_SIZES, DataSource, RawDataset, Split, as_rgb, class_balanced_subset

DIGITS_TEST_SIZE = 360  # 20% of the 1,797 images, stratified, fixed


@DATASETS.register("digits")
def load_digits(source: DataSource) -> RawDataset:
    """scikit-learn's 8x8 digits (0..16 grey levels) as 8x8 RGB uint8, with a fixed stratified test split."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = as_rgb(np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8))
    labels = bunch.target.astype(np.int64)
    test_index = class_balanced_subset(labels, DIGITS_TEST_SIZE, seed=0)
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_index] = True
    classes = [str(d) for d in range(10)]
    return RawDataset(Split(images[~is_test], labels[~is_test]), Split(images[is_test], labels[is_test]), classes)


NATIVE_SIZES["digits"] = 8


@DATASETS.register("synthetic")
def load_synthetic(source: DataSource) -> RawDataset:
    """For tests: 10 classes of oriented colour gratings plus noise, 16x16 (or image_size), seeded."""
    size = source.image_size or 16
    rng = np.random.default_rng(0)

    def make(n: int) -> Split:
        labels = np.arange(n) % 10
        yy, xx = np.mgrid[0:size, 0:size] / size
        angle = labels[:, None, None] * np.pi / 10
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        wave = np.sin(2 * np.pi * 3 * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
        colour = np.stack([np.cos(labels), np.sin(labels), np.cos(2 * labels)], axis=-1)[:, None, None, :]
        image = 0.5 + 0.25 * wave[..., None] * (1 + colour) / 2 + rng.normal(0, 0.05, (n, size, size, 3))
        return Split(np.clip(image * 255, 0, 255).astype(np.uint8), labels.astype(np.int64))

    return RawDataset(make(1000), make(200), [f"class{i}" for i in range(10)])


NATIVE_SIZES["synthetic"] = 16
