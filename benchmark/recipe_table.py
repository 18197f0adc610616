"""The reference-recipe table, generated from the recipes themselves (`gpsbench recipes`).

docs/training.md's recipe table is this function's output (a test compares them), so the table a user reads is
the recipe the code trains with. Heads are described from the modules a method builds.
"""

from __future__ import annotations

import dataclasses

import torch.nn as nn

from benchmark.augment import LARGE_IMAGE_SIZE, NEIGHBOUR_VIEWS, AugmentParams, resolve_aug_params, run_views
from benchmark.methods import METHODS, MethodContext, build_method
from benchmark.optim import resolve_optimizer_args

HEAD_FIELDS = ("proj_hidden_dim", "proj_output_dim", "pred_hidden_dim")
FEATURE_DIM = 512  # a ResNet-18's features, to describe the heads' widths
AUG_NAMES = {  # AugmentParams field -> how the table writes it
    "crop_scale": "crop",
    "jitter_p": "jitter",
    "grayscale_p": "grey",
    "blur_p": "blur",
    "solarize_p": "solarize",
    "flip_p": "flip",
}


def _head(module: nn.Sequential) -> str:
    """`512-2048-256, BN, ReLU`: the widths of the Linear layers and the other layer kinds in it."""
    widths = [m.in_features for m in module if isinstance(m, nn.Linear)][:1]
    widths += [m.out_features for m in module if isinstance(m, nn.Linear)]
    kinds = []
    for m in module:
        if isinstance(m, nn.BatchNorm1d):
            kinds.append("BN" if m.affine else "BN (no affine)")
    norms = sorted(set(kinds)) if kinds else ["no BN"]
    last = ["last BN"] if isinstance(module[-1], nn.BatchNorm1d) else []
    linears = [m for m in module if isinstance(m, nn.Linear)]
    unbiased = [str(i + 1) for i, m in enumerate(linears) if m.bias is None]
    bias = [f"no bias in Linear {', '.join(unbiased)}"] if unbiased else []
    return "-".join(str(w) for w in widths) + f" ({', '.join(norms + last + bias)})"


def _heads(name: str) -> str:
    method = build_method(name, nn.Identity(), FEATURE_DIM, {}, MethodContext(num_train=50_000, epochs=1))
    static = {id(module) for module in method.static_lr_modules()}
    parts = [
        f"{head} {_head(getattr(method, head))}"
        + (" at the base lr throughout" if id(getattr(method, head)) in static else "")
        for head in ("projector", "predictor")
        if hasattr(method, head)
    ]
    return "; ".join(parts)


def _loss_settings(name: str) -> str:
    params = METHODS.get(name).Params()
    return ", ".join(
        f"{f.name} {getattr(params, f.name)}" for f in dataclasses.fields(params) if f.name not in HEAD_FIELDS
    )


def _view(params: AugmentParams) -> str:
    """What a view does beyond AugmentParams' neutral defaults, in the pipeline's order."""
    out = []
    if params.crop:
        low, high = params.crop_scale
        out.append(f"crop {low:g}-{high:g}")
    if params.jitter_p:
        out.append(
            f"jitter {params.jitter_p:g} ({params.brightness:g}/{params.contrast:g}/"
            f"{params.saturation:g}/{params.hue:g})"
        )
    for field in ("grayscale_p", "blur_p", "solarize_p", "flip_p"):
        if getattr(params, field):
            out.append(f"{AUG_NAMES[field]} {getattr(params, field):g}")
    return ", ".join(out) or "none"


def _views(name: str, image_size: int) -> str:
    pair = resolve_aug_params("strong", {}, image_size, METHODS.get(name).recipe.strong)
    if pair.symmetric:
        return f"both: {_view(pair.view1)}"
    return f"view 1: {_view(pair.view1)}; view 2: {_view(pair.view2)}"


def recipe_table() -> str:
    """Markdown: one row per method, every value of its recipe and where it comes from."""
    header = (
        "| method | optimiser | base lr (batch 256) | weight decay | LARS eta / clip lr / exclude bias, norm "
        "| online classifier lr | from 96 px: base lr / weight decay "
        "| warm-up | heads (from a 512-d backbone) | loss settings | strong DA below 96 px | strong DA from 96 px "
        "| sources |"
    )
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for name in METHODS.names():
        recipe = METHODS.get(name).recipe
        args = resolve_optimizer_args(recipe.optimizer, recipe.optimizer_args)
        lars = (
            f"{args.eta:g} / {str(args.clip_lr).lower()} / {str(args.exclude_bias_n_norm).lower()}"
            if recipe.optimizer == "lars"
            else ("every tensor decays" if not args.exclude_bias_n_norm_wd else "biases, norms not decayed")
        )
        sources = "; ".join(
            dict.fromkeys(
                [
                    recipe.source,
                    recipe.large.source,
                    recipe.strong.small.source,
                    recipe.strong.large.source,
                    recipe.heads_source + " (heads)",
                ]
            )
        )
        lines.append(
            f"| `{name}` | {recipe.optimizer} (momentum {args.momentum:g}) | {recipe.lr:g} | {recipe.weight_decay:g} "
            f"| {lars} | {recipe.classifier_lr:g} | {recipe.large.lr:g} / {recipe.large.weight_decay:g} "
            f"| {recipe.warmup_epochs} epochs from {recipe.warmup_start_lr:g}, then cosine to 0 "
            f"| {_heads(name)} | {_loss_settings(name)} | {_views(name, 32)} | {_views(name, 96)} | {sources} |"
        )
    return "\n".join(lines) + "\n"


def views_table(aug: str = "strong") -> str:
    """Markdown: per method, the pipeline each view of a plain cell and of a GPS cell goes through (at
    both image scales), under each `neighbour_view`: what train builds with run_views."""
    header = "| method | image size | plain: anchor x / positive x | " + " | ".join(
        f"GPS, neighbour_view `{choice}`: anchor x / neighbour x'" for choice in NEIGHBOUR_VIEWS
    )
    lines = [header + " |", "|" + " --- |" * (3 + len(NEIGHBOUR_VIEWS))]
    for name in METHODS.names():
        for size, label in ((32, f"below {LARGE_IMAGE_SIZE} px"), (LARGE_IMAGE_SIZE, f"from {LARGE_IMAGE_SIZE} px")):
            pair = resolve_aug_params(aug, {}, size, METHODS.get(name).recipe.strong)
            cells = [_pair_cell(pair, pair)] + [_pair_cell(pair, run_views(pair, True, c)) for c in NEIGHBOUR_VIEWS]
            lines.append(f"| `{name}` | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pair_cell(recipe, used) -> str:
    """`1 / 2`: which of the recipe's pipelines (1: first, 2: second) each view takes; one pipeline: `1 / 1`."""

    def which(params: AugmentParams) -> str:
        return "1" if params == recipe.view1 else "2"

    same = " (one pipeline)" if recipe.symmetric else ""
    return f"{which(used.view1)} / {which(used.view2)}{same}"
