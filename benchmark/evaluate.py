"""Frozen-backbone evaluation: weighted kNN (cosine, T=0.07) and a linear probe.

The test split is only ever scored: the probe's L2 strength is chosen on the validation split,
and the kNN settings are fixed in advance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.augment import normalize


PROBE_L2_GRID = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


@torch.no_grad()
def extract_features(
    model: nn.Module, images: np.ndarray | torch.Tensor, mean, std, device: torch.device,
    batch_size: int = 1024, autocast_dtype: torch.dtype | None = None, size: int | None = None, forward=None,
) -> torch.Tensor:
    """Features (float32, on `device`) of uint8 NHWC images through a frozen model in eval mode, no
    augmentation; `size` resizes first (bilinear, antialiased), `forward` replaces model.__call__
    (e.g. CLIP's encode_image)."""
    was_training = model.training
    model.eval()
    forward = forward or model
    mean_t = torch.tensor(mean, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(images), batch_size):
        chunk = torch.as_tensor(images[start : start + batch_size]).to(device, non_blocking=True)
        x = normalize(chunk, mean_t, std_t, size)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            out.append(forward(x).float().flatten(1))
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def knn_predict(
    bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int, temperature: float,
    num_classes: int, chunk: int = 1024,
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


def linear_probe(
    train_f: torch.Tensor, train_y: torch.Tensor, val_f: torch.Tensor, val_y: torch.Tensor,
    test_f: torch.Tensor, test_y: torch.Tensor, num_classes: int, l2_grid=PROBE_L2_GRID, max_iter: int = 200,
) -> ProbeResult:
    """Multinomial logistic regression on standardised frozen features, trained on train with
    full-batch L-BFGS for each L2 strength; the strength with the best val accuracy is reported."""
    mu, sigma = train_f.mean(0), train_f.std(0) + 1e-6
    train_f, val_f, test_f = [(f - mu) / sigma for f in (train_f, val_f, test_f)]
    best: ProbeResult | None = None
    weight = torch.zeros(train_f.shape[1], num_classes, device=train_f.device, requires_grad=True)
    bias = torch.zeros(num_classes, device=train_f.device, requires_grad=True)
    for l2 in l2_grid:  # warm-started from the previous strength: each fit then takes few iterations
        optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20,
                                      line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = F.cross_entropy(train_f @ weight + bias, train_y) + l2 * weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            val_acc = float(((val_f @ weight + bias).argmax(1) == val_y).float().mean())
            if best is None or val_acc > best.val_acc:
                test_acc = float(((test_f @ weight + bias).argmax(1) == test_y).float().mean())
                best = ProbeResult(val_acc, test_acc, l2)
    return best


def evaluate_backbone(backbone: nn.Module, data, device: torch.device, knn_temperature: float = 0.07,
                      autocast_dtype: torch.dtype | None = None) -> dict[str, float]:
    """All frozen-feature metrics of DESIGN.md's result keys: test numbers, plus val for choices."""
    feats = {
        name: extract_features(backbone, getattr(data, name).images, data.mean, data.std, device,
                               autocast_dtype=autocast_dtype)
        for name in ("train", "val", "test")
    }
    labels = {name: torch.as_tensor(getattr(data, name).labels, device=device) for name in feats}
    c = data.num_classes

    def knn(query: str, k: int) -> float:
        return knn_accuracy(feats["train"], labels["train"], feats[query], labels[query], k, knn_temperature, c)

    probe = linear_probe(feats["train"], labels["train"], feats["val"], labels["val"], feats["test"],
                         labels["test"], c)
    return {
        "knn_acc": knn("test", 20),
        "knn200_acc": knn("test", 200),
        "val_knn_acc": knn("val", 20),
        "linear_acc": probe.test_acc,
        "val_linear_acc": probe.val_acc,
        "probe_l2": probe.l2,
    }
