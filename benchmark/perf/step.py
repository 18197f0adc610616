"""The training step measured side by side, on one device, same backbone, batch and augmentation:
- ceiling:        model-only step on batches already on the device (no sampling, no augmentation)
- pipeline:       the real training step of `train` (sampler + gather + augmentation + model)
- data_pipeline:  sampler + gather + augmentation alone
- sampler:        the GPS pair sampler alone (sampler_share: its time as a fraction of a pipeline step)
- dataloader:     a torch DataLoader with torchvision PIL transforms doing the same augmentation,
                  alone and feeding the same model (dataloader_train)
Images/s count augmented views (two per pair), as `images_per_s` in result.json does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from benchmark.assembly import PairStep, build_parts
from benchmark.augment import AugmentParams
from benchmark.config import RunConfig
from benchmark.data import DatasetSplits
from benchmark.perf.profile import profile_steps
from benchmark.syncs import record_host_syncs, summarize


class PILGaussianBlur:
    """solo-learn's blur (solo/data/pretrain_dataloader.py): PIL's GaussianBlur with a uniform sigma."""

    def __init__(self, sigma: tuple[float, float]):
        self.sigma = sigma

    def __call__(self, image):
        import random

        from PIL import ImageFilter

        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


def torchvision_pipeline(params: AugmentParams, mean, std, size: int):
    """The same augmentation as `params`, the usual way: torchvision transforms on PIL images, in
    solo-learn's order (crop, jitter, grayscale, blur, solarisation, flip)."""
    import torchvision.transforms as T

    steps = []
    mode = T.InterpolationMode(params.interpolation)
    if params.crop:
        steps.append(
            T.RandomResizedCrop(
                params.size or size, scale=params.crop_scale, ratio=params.crop_ratio, interpolation=mode
            )
        )
    elif params.size and params.size != size:
        steps.append(T.Resize(params.size, interpolation=mode))
    if params.jitter_p:
        jitter = T.ColorJitter(params.brightness, params.contrast, params.saturation, params.hue)
        steps.append(T.RandomApply([jitter], p=params.jitter_p))
    if params.grayscale_p:
        steps.append(T.RandomGrayscale(params.grayscale_p))
    if params.blur_p:
        steps.append(T.RandomApply([PILGaussianBlur(params.blur_sigma)], p=params.blur_p))
    if params.solarize_p:
        steps.append(T.RandomSolarize(128, p=params.solarize_p))
    if params.flip_p:
        steps.append(T.RandomHorizontalFlip(params.flip_p))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


class TwoViewDataset(torch.utils.data.Dataset):
    """Each image twice, through the first and the second view's transforms."""

    def __init__(self, images: np.ndarray, transforms: tuple):
        self.images, self.transforms = images, transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        image = Image.fromarray(self.images[i])
        return tuple(transform(image) for transform in self.transforms)


def _rate(
    fn: Callable[[], object], views_per_call: int, device: torch.device, warmup: int, seconds: float, min_calls: int
) -> float:
    """Views/s of `fn`, after `warmup` calls, over at least `min_calls` calls and `seconds`."""
    for _ in range(warmup):
        fn()
    _sync(device)
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    _sync(device)
    return calls * views_per_call / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class StepMeasures:
    figures: dict[str, float]  # views/s of each measure
    setup: dict  # what they were measured with
    profile_shares: dict[str, dict[str, float]]  # each scope's share of the pipeline step, host and device time
    profile_table: str  # torch.profiler's operator table
    host_syncs: dict[str, int]  # host syncs in one pipeline step, where they are (none: the host runs ahead)


# long: each measure in the report's order, all sharing the one assembled run, its anchors and its budget
def step_figures(
    config: RunConfig, data: DatasetSplits, device: torch.device, quick: bool, workers: int
) -> StepMeasures:
    """Images/s of each measure, the setup they were measured with, the pipeline step's profile and
    its host syncs."""
    compiles_before = _compile_counts()
    parts = build_parts(config, data, device)
    step = PairStep(parts)
    batch = config.batch_size
    views = 2 * batch
    # --quick: calls for 3 s, at least one (a ResNet-18 step on a CPU takes ~10 s), after one warm-up call;
    # the model-bound measures after the first skip it there, the model being warm by then
    budget: dict[str, Any] = (
        dict(warmup=1, seconds=3.0, min_calls=1) if quick else dict(warmup=3, seconds=20.0, min_calls=5)
    )
    warm = {**budget, "warmup": 0} if quick else budget
    n = len(parts.images)

    def anchors() -> torch.Tensor:
        return torch.randint(0, n, (batch,), generator=parts.generator, device=device)

    fixed_anchors = anchors()
    fixed_v1, fixed_v2, fixed_positives = step.views(fixed_anchors)

    def model_step(v1: torch.Tensor, v2: torch.Tensor) -> None:
        loss = step.loss(v1, v2, fixed_anchors, fixed_positives)
        parts.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parts.optimizer.step()
        parts.method.after_step(0.5)

    figures: dict[str, float] = {}
    figures["ceiling"] = _rate(lambda: model_step(fixed_v1, fixed_v2), views, device, **budget)
    figures["pipeline"] = _rate(lambda: step(anchors(), 1e-3, 0.5), views, device, **warm)
    figures["data_pipeline"] = _rate(lambda: step.views(anchors()), views, device, **budget)
    figures["sampler"] = _rate(lambda: parts.gps.sampler(fixed_anchors, parts.generator), views, device, **budget)

    loader = two_view_loader(
        data, parts.augment.views, batch, workers, persistent=workers > 0, pin=device.type == "cuda"
    )
    batches = _endless(loader)

    def loader_only() -> None:
        next(batches)

    def loader_train() -> None:
        v1, v2 = next(batches)
        model_step(
            v1.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last),
            v2.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last),
        )

    figures["dataloader"] = _rate(loader_only, views, device, **budget)
    figures["dataloader_train"] = _rate(loader_train, views, device, **warm)  # workers warm from `dataloader`

    def profiled() -> tuple[dict, str]:
        return profile_steps(lambda: step(anchors(), 1e-3, 0.5), device, steps=1 if quick else 10)

    if quick:  # one step for both (a ResNet-18 step takes ~9 s on 2 CPU cores); the recorder's per-op cost
        with record_host_syncs(device) as syncs:  # then enters the host shares: < 0.1% of such a step
            shares, table = profiled()
    else:  # apart: on a GPU the recorder would weigh on the host shares of a 15 ms step
        shares, table = profiled()
        with record_host_syncs(device) as syncs:
            step(anchors(), 1e-3, 0.5)
    setup = {
        "dataset": config.dataset,
        "train_images": n,
        "image_size": data.image_size,
        "backbone": config.backbone,
        "method": config.method,
        "aug": config.aug,
        "batch_size": batch,
        "prior": config.prior,
        "k": config.k,
        "sampling": config.sampling,
        "prior_nn_agreement": parts.gps.prior_nn_agreement,
        "dataloader_workers": workers,
        "precision": str(parts.amp_dtype or "fp32"),
        "compile": config.compile,
        **(
            {name: count - compiles_before[name] for name, count in _compile_counts().items()} if config.compile else {}
        ),
    }
    return StepMeasures(figures, setup, shares, table, summarize(syncs))


def _compile_counts() -> dict[str, int]:
    """Graphs torch.compile made and graph breaks it hit: every measure shares one forward, so more
    than one graph means a recompile (a guard failed: a shape, a stride, a flag changed)."""
    from torch._dynamo.utils import counters

    return {
        "compiled_graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
    }


def two_view_loader(data: DatasetSplits, views, batch: int, workers: int, persistent: bool, pin: bool = False):
    """The reference a data path is measured against: a DataLoader applying the two pipelines of `views`
    (a ViewPair) with torchvision on PIL images in `workers` processes."""
    transforms = tuple(
        torchvision_pipeline(p, data.mean, data.std, data.image_size) for p in (views.view1, views.view2)
    )
    return torch.utils.data.DataLoader(
        TwoViewDataset(data.pretrain.images, transforms),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=persistent,
        pin_memory=pin,
        prefetch_factor=4 if workers > 0 else None,
    )


def _endless(loader):
    while True:
        yield from loader
