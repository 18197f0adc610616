"""solo-learn's online linear classifier (`online_linear`), and the two readings it gives.

The references train a linear classifier during pretraining (solo-learn solo/methods/base.py; the
official GPS code, aarashfeizi/gps-ssl, is a fork of it): on the backbone's features of the training
views, detached (`self.classifier(feats.detach())`), so its loss reaches the classifier only; in the
same optimiser as the model, at its own lr (`optimizer.classifier_lr`, scaled by batch / 256 as lr is:
solo/args/pretrain.py) without weight decay (`learnable_params`), under the same warm-up + cosine
schedule. Its loss is the mean over the views of each view's cross-entropy against the label of the
view's image (gps-ssl solo/methods/base.py, training_step: a GPS neighbour's view with the neighbour's
label). It is scored every epoch on CIFAR-10's test split, which solo-learn calls val
(solo/data/classification_dataloader.py), and the run keeps the best epoch's score, with early
stopping on that same score (gps-ssl main_nn.py: EarlyStopping on val_acc1 with patience
max_epochs // es_factor, es_factor 10 by solo/args/pretrain.py; ModelCheckpoint on val_acc1).

Two heads train here side by side, alike but for the labels they see:
- `reference`: every pretraining image's label, as the references; scored on test at every
  evaluation: `online_linear_acc` (the last epoch's: nothing chosen) and
  `online_linear_acc_test_selected` (the references' reading: the best evaluated epoch until their
  early stopping would stop, chosen on test; for comparison with published numbers only);
- `val`: the labels of train without val (val's rows are left out of its loss), scored on val:
  `val_online_linear_acc` (the last epoch's: an honest number, chosen on nothing).

Nothing of it reaches pretraining: the features are detached, the heads are groups of their own in
the optimiser (every optimiser here steps group by group), and they are initialised from a generator
of their own, so the method trains exactly as without them (tests/test_online.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.evaluate import extract_features

if TYPE_CHECKING:
    from benchmark.data import DatasetSplits
    from benchmark.methods import SSLMethod

ES_FACTOR = 10  # solo/args/pretrain.py (gps-ssl): es_factor default; patience = max_epochs // es_factor
HEAD_SEED_OFFSET = 104_729  # the heads' own generator: seed + this (no draw of the run's streams)
SCHEDULE = "classifier"  # the optimiser groups' schedule name (optim.set_lr)


class ClassifierRecipe(Protocol):
    """What the classifier's lr reads of a method's recipe (methods.Recipe has it)."""

    @property
    def classifier_lr(self) -> float: ...


def classifier_lr(choice: float | None, recipe: ClassifierRecipe, batch_size: int) -> float:
    """The classifier's lr: the config's `classifier_lr`, else the recipe file's x batch / 256."""
    return choice if choice is not None else recipe.classifier_lr * batch_size / 256


class OnlineHeads(nn.Module):
    """The two linear heads (nn.Linear's own initialisation, as solo-learn's classifier)."""

    def __init__(self, feat_dim: int, num_classes: int, seed: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # leaves the run's global stream where it was
            torch.manual_seed(seed + HEAD_SEED_OFFSET)
            self.reference = nn.Linear(feat_dim, num_classes)
            self.val = nn.Linear(feat_dim, num_classes)

    def loss(self, features: torch.Tensor, labels: torch.Tensor, views: int) -> torch.Tensor:
        """Both heads' losses, summed: each the mean over the `views` blocks of rows of that view's
        cross-entropy over its labelled rows (label -1: not seen by that head)."""
        features = features.detach().float()
        return _mean_view_loss(self.reference(features), labels[0], views) + _mean_view_loss(
            self.val(features), labels[1], views
        )


def _mean_view_loss(logits: torch.Tensor, labels: torch.Tensor, views: int) -> torch.Tensor:
    """solo-learn's sum over the views of F.cross_entropy(..., ignore_index=-1) / num_views, written
    without a data-sized selection (a boolean index makes the host wait for the device)."""
    known = (labels >= 0).float().view(views, -1)
    per_row = F.cross_entropy(logits, labels.clamp(min=0), reduction="none").view(views, -1)
    return ((per_row * known).sum(dim=1) / known.sum(dim=1).clamp(min=1.0)).mean()


class WithOnlineLinear(nn.Module):
    """What the training step calls when `online_linear` is on: the method's forward (or the
    multi-positive one), then the heads' loss on the backbone features that forward computed, taken
    from the method's feature log (SSLMethod.embed_views). Returns (method loss, heads' loss). A
    module, so that DistributedDataParallel and torch.compile wrap heads and method together."""

    def __init__(self, inner: nn.Module, method: SSLMethod, heads: OnlineHeads):
        super().__init__()
        self.inner, self.heads = inner, heads
        self._method = [method]  # a plain list: the method stays registered with `inner` only

    def forward(self, v1: torch.Tensor, v2: torch.Tensor, labels: torch.Tensor, **extra):
        method = self._method[0]
        method.feature_log = []
        loss = self.inner(v1, v2, **extra)
        log, method.feature_log = method.feature_log, None
        anchors = log[0][0]  # a default multi-positive loss embeds the anchor view once per pair: once here
        positives = torch.cat([p for _, p in log])
        features = torch.cat([anchors, positives])
        return loss, self.heads.loss(features, labels, len(features) // len(anchors))


@dataclass
class SelectionOnTest:
    """The references' reading: the best test accuracy among the evaluated epochs, up to the epoch at
    which their early stopping would end the run (no gain for `patience` epochs; min_delta 0)."""

    patience: int
    best: float = -1.0
    best_epoch: int = 0
    stopped_at: int | None = None

    def see(self, epoch: int, accuracy: float) -> None:
        if self.stopped_at is not None:
            return
        if accuracy > self.best:
            self.best, self.best_epoch = accuracy, epoch
        elif epoch - self.best_epoch >= self.patience:
            self.stopped_at = epoch

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "stopped_at": self.stopped_at}


@dataclass
class OnlineLinear:
    """A run's online classifier: its heads, each pretraining image's label for each head, the
    test selection so far, and the heads' summed loss of the current epoch (on the device)."""

    heads: OnlineHeads
    labels: torch.Tensor  # (2, N): row 0 every label (reference head), row 1 -1 on val's rows (val head)
    lr: float
    selection: SelectionOnTest
    loss_sum: torch.Tensor  # this epoch's summed loss of both heads, on the device (read once an epoch)
    last: dict[str, float] = field(default_factory=dict)  # the latest evaluation's two accuracies

    @classmethod
    def build(cls, config, data: DatasetSplits, feat_dim: int, device: torch.device) -> OnlineLinear:
        labels = torch.as_tensor(data.pretrain.labels, device=device)
        train_rows = len(data.train) if data.val_carved else len(labels)  # pretrain = train, then val
        honest = torch.where(torch.arange(len(labels), device=device) < train_rows, labels, -1)
        heads = OnlineHeads(feat_dim, data.num_classes, config.seed).to(device)
        patience = max(0, config.epochs // ES_FACTOR)
        return cls(
            heads,
            torch.stack([labels, honest]),
            classifier_lr(config.classifier_lr, config.recipe, config.batch_size),
            SelectionOnTest(patience),
            torch.zeros((), device=device),
        )

    def step_labels(self, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """(2, B + m B): each view row's label for each head, anchors' rows first (the feature order)."""
        return self.labels[:, torch.cat([anchors, positives])]

    @torch.no_grad()
    def evaluate(self, backbone: nn.Module, data: DatasetSplits, device: torch.device, epoch: int) -> dict:
        """The heads on the un-augmented val and test images (eval mode), and the selection updated."""
        scores = {}
        for key, split, head in (
            ("val_online_linear_acc", data.val, self.heads.val),
            ("online_linear_acc", data.test, self.heads.reference),
        ):
            features = extract_features(backbone, split.images, data.mean, data.std, device)
            predicted = head(features).argmax(dim=1)
            scores[key] = float((predicted == torch.as_tensor(split.labels, device=device)).float().mean())
        self.selection.see(epoch, scores["online_linear_acc"])
        self.last = scores
        return scores

    def result(self) -> dict[str, Any]:
        """result.json's keys: the last epoch's two readings and the references' test-selected one."""
        return {
            **self.last,
            "online_linear_acc_test_selected": self.selection.best,
            "online_linear_test_selected_epoch": self.selection.best_epoch,
            "online_linear_test_stopped_epoch": self.selection.stopped_at,
        }

    def state(self) -> dict[str, Any]:
        return {
            "heads": self.heads.state_dict(),
            "selection": self.selection.state(),
            "last": dict(self.last),
            "loss_sum": self.loss_sum.cpu(),  # an epoch stopped midway resumes with its sum so far
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.heads.load_state_dict(state["heads"])
        self.selection = SelectionOnTest(self.selection.patience, **state["selection"])
        self.last = dict(state["last"])
        self.loss_sum = state["loss_sum"].to(self.loss_sum.device)
