"""The training loop of one run, with the data on the device.

Each step: anchor indices (a permutation per epoch) -> pair sampler -> gather both images from the
uint8 tensor on the device -> one batched augmentation call -> method loss -> optimiser. No host
syncs inside an epoch: the loss is summed on the device and read once per epoch.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.profiler import record_function

from benchmark.attempt import Attempt
from benchmark.augment import BatchAugment, resolve_aug_params
from benchmark.backbones import build_backbone, resolve_backbone_name
from benchmark.claim import RunBusy
from benchmark.config import RunConfig
from benchmark.data import DatasetSplits, load_run_data
from benchmark.distributed import Ranks, any_rank, barrier, convert_batchnorm, init_from_env, mean_over_ranks
from benchmark.errors import ConfigError, TrainingError
from benchmark.evaluate import evaluate_backbone, extract_features, knn_accuracy
from benchmark.lifecycle import RunInterrupted, RunLifecycle
from benchmark.methods import MethodContext, SSLMethod, build_method
from benchmark.optim import build_optimizer, lr_at, resolve_optim, set_lr
from benchmark.pairing import GPSSetup, build_sampler
from benchmark.positives import MultiPositive, draw_positives
from benchmark.progress import StepBar, epoch_line, say
from benchmark.quality import label_free_quality
from benchmark.refresh import refresh_due, refresh_table, restore_table, table_state
from benchmark.run_result import RunResult
from benchmark.rundir import ReadOnlyRunDir, RunDir
from benchmark.tracking import SINGLE_RUN, Labels, Tracker

RANK_SEED_STRIDE = 1_000_003  # process r draws from seed + r * stride (rank 0: the seed itself)
STOP_POLL_STEPS = 10


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """The run's device; with several processes on a node, process i takes GPU i."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; valid: cpu, auto")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA by default; fp32 on the CPU, where bf16 matmuls are slow on most chips."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


@dataclass
class RunParts:
    """Everything a run trains with, built from a config and its data (shared with `gpsbench perf`)."""

    config: RunConfig
    data: DatasetSplits
    device: torch.device
    images: torch.Tensor  # training images, uint8 NHWC, on the device
    method: SSLMethod
    optimizer: torch.optim.Optimizer
    gps: GPSSetup  # the pair sampler and what building it cost
    augment: BatchAugment
    generator: torch.Generator  # this process's draws: positives and augmentations
    amp_dtype: torch.dtype | None
    optim: dict
    ranks: Ranks = Ranks()
    forward: torch.nn.Module | None = None  # the method, wrapped in DistributedDataParallel when distributed
    order_generator: torch.Generator | None = None  # several processes: the epoch order they all share
    refreshed_at: int = 0  # the epoch after which the neighbour table was last rebuilt (0: the prior's)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.images) // self.config.batch_size

    def anchors(self, order: torch.Tensor, step: int) -> torch.Tensor:
        """This process's share of the step's global batch."""
        per_rank = self.config.batch_size // self.ranks.world_size
        start = step * self.config.batch_size + self.ranks.rank * per_rank
        return order[start : start + per_rank]


def build_parts(
    config: RunConfig,
    data: DatasetSplits,
    device: torch.device,
    results_dir: Path | None = None,
    ranks: Ranks | None = None,
) -> RunParts:
    """`batch_size` is the global batch: with W processes each trains on batch_size / W pairs a step,
    so the run (and its run_id, and its lr scaled by the batch) is the same on 1 or W GPUs."""
    ranks = ranks if ranks is not None else Ranks()
    n_images = len(data.pretrain)  # pretraining sees every training image (labels unused)
    if config.batch_size > n_images:
        raise ConfigError(
            f"batch_size {config.batch_size} exceeds the {n_images} training images of "
            f"{config.dataset}; valid: 2 to {n_images}"
        )
    if config.batch_size % ranks.world_size:
        raise ConfigError(
            f"batch_size {config.batch_size} does not split over {ranks.world_size} processes; "
            f"valid: a multiple of {ranks.world_size}"
        )
    torch.manual_seed(config.seed)
    if device.type == "cuda":  # every step has the same shapes: let cuDNN time its convolution algorithms once
        torch.backends.cudnn.benchmark = True
    backbone, feat_dim = build_backbone(config.backbone, data.image_size, config.pretrained, config.weights)
    context = MethodContext(num_train=n_images, epochs=config.epochs)
    method = build_method(config.method, backbone, feat_dim, config.method_args, context).to(device)
    method = method.to(memory_format=torch.channels_last)
    optim = resolve_optim(config, method.recipe)
    optimizer = build_optimizer(optim["optimizer"], method, optim["lr"], optim["weight_decay"], optim["optimizer_args"])
    views = resolve_aug_params(config.aug, config.aug_args, data.image_size, method.recipe.strong)
    stream_seed = config.seed + RANK_SEED_STRIDE * ranks.rank
    generator = torch.Generator(device=device)
    generator.manual_seed(stream_seed)
    forward: torch.nn.Module
    order_generator: torch.Generator | None
    forward, order_generator = method, None
    if config.positives > 1:  # the step's loss: the method's multi_positive_loss (benchmark/positives.py)
        forward = MultiPositive(method, config.positives)
    if ranks.distributed:
        from torch.nn.parallel import DistributedDataParallel

        convert_batchnorm(method)
        forward = DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )  # BatchNorm is global, queues are gathered
        order_generator = torch.Generator(device=device)
        order_generator.manual_seed(config.seed)
    if not ranks.is_main:
        barrier()  # rank 0 computes the prior embedding and neighbour table; the others read its cache
    gps = build_sampler(config, data, device, results_dir=results_dir)
    if ranks.is_main:
        barrier()
    return RunParts(
        config=config,
        data=data,
        device=device,
        images=torch.from_numpy(data.pretrain.images).to(device),
        method=method,
        optimizer=optimizer,
        gps=gps,
        augment=BatchAugment(views, data.mean, data.std, device, seed=stream_seed),
        generator=generator,
        amp_dtype=autocast_dtype(config.precision, device),
        optim=optim,
        ranks=ranks,
        forward=forward,
        order_generator=order_generator,
    )


class PairStep:
    """One training step on a batch of anchor indices; also exposes the data path alone (`views`)."""

    def __init__(self, parts: RunParts):
        self.parts = parts
        forward: Callable[..., torch.Tensor] = parts.forward or parts.method
        if parts.config.compile:
            forward = torch.compile(forward)
        self.forward = forward

    def views(self, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The anchors' and the positives' augmented views and the positives' indices (one gather, one
        augmentation call); with `positives: m` the positives' m * B rows, laid out as benchmark/positives.py says."""
        p = self.parts
        with record_function("gps.sample"):
            positives = draw_positives(p.gps.sampler, anchors, p.generator, p.config.positives)
        with record_function("gps.gather"):
            both = p.images[torch.cat([anchors, positives])]
        with record_function("gps.augment"):
            if p.config.positives == 1:
                v1, v2 = p.augment(both, p.generator).chunk(2)
            else:
                v1, v2 = p.augment(both, p.generator, anchors=len(anchors)).split([len(anchors), len(positives)])
        return v1, v2, positives

    def loss(self, v1: torch.Tensor, v2: torch.Tensor, anchors: torch.Tensor, positives: torch.Tensor):
        p = self.parts
        extra = {"ids": (anchors, positives)} if p.method.uses_pair_ids else {}
        with torch.autocast(p.device.type, dtype=p.amp_dtype or torch.bfloat16, enabled=p.amp_dtype is not None):
            return self.forward(v1, v2, **extra)

    def __call__(self, anchors: torch.Tensor, lr: float, progress: float) -> torch.Tensor:
        p = self.parts
        v1, v2, positives = self.views(anchors)
        set_lr(p.optimizer, lr, p.optim["lr"])
        with record_function("model.forward"):
            loss = self.loss(v1, v2, anchors, positives)
        with record_function("model.backward"):
            p.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        with record_function("model.optimizer"):
            p.optimizer.step()
            p.method.after_step(progress)
        return loss.detach()


@dataclass
class EpochPosition:
    """Where a checkpoint taken inside an epoch stands: the epoch's anchor order and what is done of it."""

    step: int  # steps of the epoch already trained
    order: torch.Tensor
    loss_sum: torch.Tensor
    seconds: float  # training time already spent in this epoch


def _checkpoint_state(
    parts: RunParts, run_id: str, epoch: int, clock: "TrainClock", position: EpochPosition | None = None
) -> dict:
    return {
        "run_id": run_id,
        "epoch": epoch,  # epochs completed
        "train_seconds": clock.seconds,
        "views": clock.views,
        "method": parts.method.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "generator": parts.generator.get_state(),
        "augment_order": parts.augment.order_rng.getstate(),
        "order_generator": None if parts.order_generator is None else parts.order_generator.get_state(),
        "neighbor_table": table_state(parts),  # a refreshed table (benchmark/refresh.py); None: the prior's
        "position": None
        if position is None
        else {
            "step": position.step,
            "order": position.order.cpu(),
            "loss_sum": position.loss_sum.cpu(),
            "seconds": position.seconds,
        },
    }


@dataclass
class TrainClock:
    """Training time and views so far, carried across resumed attempts for an honest images/s."""

    seconds: float = 0.0
    views: int = 0


def _restore(parts: RunParts, state: dict, run_id: str) -> tuple[int, TrainClock, EpochPosition | None]:
    if state["run_id"] != run_id:
        raise TrainingError(
            f"checkpoint belongs to run {state['run_id']}, not {run_id}: the config changed; use a new --out"
        )
    parts.method.load_state_dict(state["method"])
    parts.optimizer.load_state_dict(state["optimizer"])
    if parts.ranks.is_main:
        parts.generator.set_state(state["generator"])
        if "augment_order" in state:  # checkpoints before it existed resume with a fresh order stream
            parts.augment.order_rng.setstate(state["augment_order"])
    else:  # rank 0's draws are saved; the others start a fresh stream of their own from here
        reseed = parts.config.seed + RANK_SEED_STRIDE * parts.ranks.rank + 7919 * state["epoch"]
        parts.generator.manual_seed(reseed)
        parts.augment.order_rng.seed(reseed)
    if parts.order_generator is not None and state.get("order_generator") is not None:
        parts.order_generator.set_state(state["order_generator"])
    restore_table(parts, state.get("neighbor_table"))
    saved = state.get("position")
    position = (
        None
        if saved is None
        else EpochPosition(
            saved["step"], saved["order"].to(parts.device), saved["loss_sum"].to(parts.device), saved["seconds"]
        )
    )
    return int(state["epoch"]), TrainClock(state["train_seconds"], state["views"]), position


def _online_knn(parts: RunParts) -> dict[str, float]:
    """kNN accuracy on val with the current backbone, for the learning curve; the bank is train
    without val, so no val image finds itself. With it, the label-free quality of the same val
    features (rankme; alignment and uniformity: two augmented passes over val), as result.json has."""
    data, device = parts.data, parts.device
    bank = extract_features(parts.method.backbone, data.train.images, data.mean, data.std, device)
    val = extract_features(parts.method.backbone, data.val.images, data.mean, data.std, device)
    quality = label_free_quality(parts.method.backbone, data.val.images, val, data.mean, data.std, device)
    return {"val_knn_acc": _val_knn(parts, bank, val), **quality}


def _val_knn(parts: RunParts, bank: torch.Tensor, val: torch.Tensor) -> float:
    data, device = parts.data, parts.device
    return knn_accuracy(
        bank,
        torch.as_tensor(data.train.labels, device=device),
        val,
        torch.as_tensor(data.val.labels, device=device),
        20,
        parts.config.knn_temperature,
        data.num_classes,
    )


def train_run(
    config: RunConfig,
    out: str | Path,
    resume: bool = False,
    data: DatasetSplits | None = None,
    *,
    restart: bool = False,
    restart_damaged: bool = False,
    results_dir: Path | None = None,
    interrupt: Callable[[], bool] | None = None,
    wandb_labels: Labels | None = None,
    epoch_callback: Callable[[dict], None] | None = None,
) -> dict:
    """Train and evaluate one run into `out` (config.json, status.json, metrics.jsonl, result.json,
    checkpoint.pt). Every check comes before the first write (benchmark/attempt.py); a finished run is
    returned as it is (`restart` trains it again), a run a live writer holds raises RunBusy. A failure
    is recorded in status.json with its error, then re-raised.

    `interrupt` is polled after every step: when it answers True the run saves a checkpoint at that step
    and raises RunInterrupted (status `pending`), so a requeued attempt continues mid-epoch. Ctrl-C also
    leaves the run `pending`: rerunning resumes it from its last checkpoint. `restart_damaged`: a
    damaged checkpoint means starting over rather than an error. `results_dir` is where `run:` priors
    are looked up. `wandb_labels`: the sweep, cell or trial the run belongs to (W&B group, name, tags).
    `epoch_callback(metrics)` sees every epoch's metrics (tuning reports the validation kNN to optuna
    there; raising stops the run)."""
    device = select_device(config.device, int(os.environ.get("LOCAL_RANK", 0)))
    ranks = init_from_env(device.type)
    run = RunDir(out) if ranks.is_main else ReadOnlyRunDir(out)  # one writer: rank 0
    run_id = config.run_id
    attempt = Attempt(
        run, config, run_id, resume=resume, restart=restart, restart_damaged=restart_damaged, writer=ranks.is_main
    )
    finished = attempt.finished()
    if finished is not None:
        return finished
    if data is None:
        data = load_run_data(config)
    parts = build_parts(config, data, device, results_dir, ranks)
    attempt.read_checkpoint()
    try:
        finished = attempt.take()
    except RunBusy:
        any_rank(True, device)
        raise
    if any_rank(finished is not None, device):
        return finished or {}
    run = attempt.run
    with RunLifecycle(attempt) as life:
        start_epoch, clock, position = 0, TrainClock(), None
        if attempt.checkpoint is not None:
            start_epoch, clock, position = _restore(parts, attempt.checkpoint, run_id)
        life.begin(start_epoch)
        if attempt.checkpoint is not None and ranks.is_main:
            where = f", step {position.step} of epoch {start_epoch + 1}" if position else ""
            print(f"run {run_id}: resuming after epoch {start_epoch}{where}", file=sys.stderr, flush=True)
        tracker = life.tracker = Tracker(run, config, run_id, labels=wandb_labels or SINGLE_RUN, enabled=ranks.is_main)
        _train_epochs(parts, run, tracker, run_id, start_epoch, clock, position, interrupt, epoch_callback)
        if not ranks.is_main:
            return {}  # rank 0 evaluates and writes the result
        eval_start = time.perf_counter()
        scores = evaluate_backbone(parts.method.backbone, data, device, config.knn_temperature, parts.amp_dtype)
        life.result = result = RunResult(
            run_id=run_id,
            method=config.method,
            aug=config.aug,
            dataset=config.dataset,
            prior=config.prior,
            seed=config.seed,
            epochs=config.epochs,
            k=config.k,
            scores=scores,
            prior_nn_agreement=parts.gps.prior_nn_agreement,
            sampling=config.sampling if config.is_gps else None,
            gps=parts.gps.report,
            train_seconds=clock.seconds,
            images_per_s=clock.views / clock.seconds if clock.seconds > 0 else None,
            eval_seconds=time.perf_counter() - eval_start,
            backbone=resolve_backbone_name(config.backbone, data.image_size, config.pretrained, config.weights),
            num_train=len(data.pretrain),
            device=str(device),
            world_size=ranks.world_size,
        )
    return result.as_dict()  # written to result.json, status `done`, as the block ended


def _train_epochs(
    parts: RunParts,
    run: RunDir,
    tracker: Tracker,
    run_id: str,
    start_epoch: int,
    clock: TrainClock,
    position: EpochPosition | None = None,
    interrupt: Callable[[], bool] | None = None,
    epoch_callback: Callable[[dict], None] | None = None,
) -> None:
    """Epochs start_epoch+1 .. epochs (the first one from `position` when resuming mid-epoch)."""
    config = parts.config
    step_fn = PairStep(parts)
    steps = parts.steps_per_epoch
    total_steps = steps * config.epochs
    warmup_steps = parts.optim["warmup_epochs"] * steps
    n = len(parts.images)
    bar = _progress(parts, start_epoch, position)
    loop_started = time.perf_counter()
    for epoch in range(start_epoch + 1, config.epochs + 1):
        parts.method.train()
        started = time.perf_counter()
        if position is None:
            order = torch.randperm(n, generator=parts.order_generator or parts.generator, device=parts.device)
            first, loss_sum, carried = 0, torch.zeros((), device=parts.device), 0.0
        else:
            order, first, loss_sum, carried = position.order, position.step, position.loss_sum, position.seconds
            position = None
        for i in range(first, steps):
            global_step = (epoch - 1) * steps + i
            anchors = parts.anchors(order, i)
            lr = lr_at(global_step, total_steps, warmup_steps, parts.optim["lr"], parts.optim["warmup_start_lr"])
            loss_sum += step_fn(anchors, lr, (global_step + 1) / total_steps)
            bar.step()  # a host-side count: no device value is read
            if interrupt is not None and _stop_requested(parts, interrupt, i):
                here = EpochPosition(i + 1, order, loss_sum, carried + time.perf_counter() - started)
                run.save_checkpoint(_checkpoint_state(parts, run_id, epoch - 1, clock, here))
                raise RunInterrupted(f"interrupted in epoch {epoch} after step {i + 1}/{steps}; checkpoint saved")
        loss = float(mean_over_ranks(loss_sum)) / max(1, steps)  # the one host sync of the epoch
        elapsed = carried + time.perf_counter() - started
        clock.seconds += elapsed
        clock.views += (1 + config.positives) * steps * config.batch_size
        if not math.isfinite(loss):
            raise TrainingError(f"loss became {loss} in epoch {epoch} (lr {parts.optim['lr']:.3g}): the run diverged")
        lr = lr_at(
            epoch * steps - 1, total_steps, warmup_steps, parts.optim["lr"], parts.optim["warmup_start_lr"]
        )  # the epoch's last step's,
        # also when a run stopped after that step resumes with no step of the epoch left to train
        metrics = {
            "epoch": epoch,
            "loss": loss,
            "lr": lr,
            "images_per_s": (1 + config.positives) * steps * config.batch_size / elapsed,
            "epoch_seconds": elapsed,
        }
        if config.eval_every and epoch % config.eval_every == 0 and parts.ranks.is_main:
            metrics.update(_online_knn(parts))
        if refresh_due(config, epoch):  # before the checkpoint, so that it holds the new table
            metrics.update(refresh_table(parts, epoch))
            clock.seconds += metrics["refresh_seconds"]
        tracker.log_epoch(metrics)
        if parts.ranks.is_main:  # one line per epoch in every job's log, from the numbers read above
            per_epoch = (time.perf_counter() - loop_started) / (epoch - start_epoch)
            say(epoch_line(run_id, metrics, config.epochs, per_epoch * (config.epochs - epoch)))
        if epoch_callback is not None and parts.ranks.is_main:
            epoch_callback(metrics)
        if epoch % config.checkpoint_every == 0 or epoch == config.epochs:
            run.save_checkpoint(_checkpoint_state(parts, run_id, epoch, clock))
        bar.epoch_end(epoch, config.epochs, loss, metrics["images_per_s"])
    bar.close()


def _stop_requested(parts: RunParts, interrupt: Callable[[], bool], step: int) -> bool:
    """Every step for one process; with several, every STOP_POLL_STEPS steps and agreed by all ranks
    (one tiny all-reduce), so that they stop at the same step."""
    if not parts.ranks.distributed:
        return interrupt()
    return step % STOP_POLL_STEPS == STOP_POLL_STEPS - 1 and any_rank(interrupt(), parts.device)


def _progress(parts: RunParts, start_epoch: int, position: EpochPosition | None) -> StepBar:
    """The step bar: on rank 0 at a terminal, when the config asks for it (sweeps' runs do not)."""
    config, steps = parts.config, parts.steps_per_epoch
    done = start_epoch * steps + (position.step if position is not None else 0)
    desc = f"{config.method}/{config.aug}"
    return StepBar(config.epochs * steps, done, desc, enabled=config.progress and parts.ranks.is_main)
