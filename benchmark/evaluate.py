"""Frozen-backbone evaluation: weighted kNN (cosine, T=0.07) and a linear probe.

The test split is only ever scored: the probe's L2 strength is chosen on the validation split,
and the kNN settings are fixed in advance. Test numbers use every training image (kNN bank, probe
refit), as the references do; val numbers use train without val, so they measure unseen labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.augment import normalize
from benchmark.data import DatasetSplits
from benchmark.progress import progress
from benchmark.quality import label_free_quality

PROBE_L2_GRID = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    mean,
    std,
    device: torch.device,
    batch_size: int = 1024,
    autocast_dtype: torch.dtype | None = None,
    size: int | None = None,
    forward=None,
    label: str | None = None,
) -> torch.Tensor:
    """Features (float32, on `device`) of uint8 NHWC images through a frozen model in eval mode, no
    augmentation; `size` resizes first (bilinear, antialiased), `forward` replaces model.__call__
    (e.g. CLIP's encode_image). `label`: report progress under it (a prior's embedding of a large set)."""
    was_training = model.training
    model.eval()
    forward = forward or model
    mean_t = torch.tensor(mean, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    out = []
    starts = range(0, len(images), batch_size)
    for start in starts if label is None else progress(starts, label, unit="batches"):
        chunk = torch.as_tensor(images[start : start + batch_size]).to(device, non_blocking=True)
        x = normalize(chunk, mean_t, std_t, size)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            out.append(forward(x).float().flatten(1))
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    k: int,
    temperature: float,
    num_classes: int,
    chunk: int = 1024,
) -> torch.Tensor:
    """Weighted kNN (Wu et al. 2018): each of the k most cosine-similar bank items votes for its
    class with weight exp(sim / T); the class with the largest summed weight wins."""
    bank = F.normalize(bank, dim=1)
    k = min(k, len(bank))
    predictions = []
    for start in range(0, len(queries), chunk):
        q = F.normalize(queries[start : start + chunk], dim=1)
        sims, index = (q @ bank.T).topk(k, dim=1)
        weights = (sims / temperature).exp()
        votes = torch.zeros(len(q), num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[index], weights)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracy(bank, bank_labels, queries, query_labels, k: int, temperature: float, num_classes: int) -> float:
    pred = knn_predict(bank, bank_labels, queries, k, temperature, num_classes)
    return float((pred == query_labels).float().mean())


@dataclass
class ProbeResult:
    val_acc: float
    test_acc: float
    l2: float


def _fit_logistic(
    feats: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    l2: float,
    max_iter: int,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS: mean cross-entropy + l2 * ||W||^2."""
    weight = start[0].detach().clone() if start else torch.zeros(feats.shape[1], num_classes, device=feats.device)
    bias = start[1].detach().clone() if start else torch.zeros(num_classes, device=feats.device)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(feats @ weight + bias, labels) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def _accuracy(model: tuple[torch.Tensor, torch.Tensor], feats: torch.Tensor, labels: torch.Tensor) -> float:
    weight, bias = model
    return float(((feats @ weight + bias).argmax(1) == labels).float().mean())


def linear_probe(
    train_f: torch.Tensor,
    train_y: torch.Tensor,
    val_f: torch.Tensor,
    val_y: torch.Tensor,
    test_f: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    l2_grid=PROBE_L2_GRID,
    max_iter: int = 200,
    refit: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> ProbeResult:
    """Logistic regression on standardised frozen features: fit on train for each L2 strength (warm-
    started from the previous one, so each fit takes few iterations) and keep the strength with the
    best val accuracy; then fit once more with that strength on `refit` (all training images: train
    and val) when given, else keep the train fit, and score the test split once."""
    mu, sigma = train_f.mean(0), train_f.std(0) + 1e-6
    train_s, val_s = (train_f - mu) / sigma, (val_f - mu) / sigma
    best_l2, best_val, best_model, model = 0.0, -1.0, None, None
    for l2 in l2_grid:
        model = _fit_logistic(train_s, train_y, num_classes, l2, max_iter, start=model)
        val_acc = _accuracy(model, val_s, val_y)
        if val_acc > best_val:
            best_l2, best_val, best_model = l2, val_acc, model
    assert best_model is not None  # the grid is not empty
    if refit is None:
        return ProbeResult(best_val, _accuracy(best_model, (test_f - mu) / sigma, test_y), best_l2)
    refit_f, refit_y = refit
    mu, sigma = refit_f.mean(0), refit_f.std(0) + 1e-6
    final = _fit_logistic((refit_f - mu) / sigma, refit_y, num_classes, best_l2, max_iter)
    return ProbeResult(best_val, _accuracy(final, (test_f - mu) / sigma, test_y), best_l2)


def evaluate_backbone(
    backbone: nn.Module,
    data: DatasetSplits,
    device: torch.device,
    knn_temperature: float = 0.07,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """All frozen-feature metrics of the result keys (docs/design.md, Contracts). Test: kNN with every training image
    as the bank, and the probe refit on every training image with the L2 chosen on val. Val: kNN
    with train minus val as the bank (no val image finds itself), and the probe fit on train; and
    the label-free quality of the val features (rankme, alignment, uniformity)."""
    feats = {
        name: extract_features(
            backbone, getattr(data, name).images, data.mean, data.std, device, autocast_dtype=autocast_dtype
        )
        for name in ("train", "val", "test")
    }
    labels = {name: torch.as_tensor(getattr(data, name).labels, device=device) for name in feats}
    if data.val_carved:  # the pretraining set: train and val, in that order (DatasetSplits.pretrain)
        bank = torch.cat([feats["train"], feats["val"]]), torch.cat([labels["train"], labels["val"]])
    else:
        bank = feats["train"], labels["train"]
    c = data.num_classes

    def knn(bank_f, bank_y, query: str, k: int) -> float:
        return knn_accuracy(bank_f, bank_y, feats[query], labels[query], k, knn_temperature, c)

    probe = linear_probe(
        feats["train"],
        labels["train"],
        feats["val"],
        labels["val"],
        feats["test"],
        labels["test"],
        c,
        refit=bank if data.val_carved else None,
    )
    return {
        "knn_acc": knn(*bank, "test", 20),
        "knn200_acc": knn(*bank, "test", 200),
        "val_knn_acc": knn(feats["train"], labels["train"], "val", 20),
        "linear_acc": probe.test_acc,
        "val_linear_acc": probe.val_acc,
        "probe_l2": probe.l2,
        **label_free_quality(backbone, data.val.images, feats["val"], data.mean, data.std, device, autocast_dtype),
    }
