"""The training loop of one run, with the data on the device: epochs of PairStep (benchmark/assembly.py,
which builds what the run trains with), checkpoints, resuming, the online evaluation and the result.

No host syncs inside an epoch: the loss is summed on the device and read once per epoch.
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

from benchmark.assembly import RANK_SEED_STRIDE, PairStep, RunParts, build_parts, select_device
from benchmark.attempt import Attempt
from benchmark.backbones import resolve_backbone_name
from benchmark.claim import RunBusy
from benchmark.config import RunConfig
from benchmark.data import DatasetSplits, load_run_data
from benchmark.distributed import any_rank, init_from_env, mean_over_ranks
from benchmark.errors import TrainingError
from benchmark.evaluate import evaluate_backbone, extract_features, knn_accuracy
from benchmark.lifecycle import RunInterrupted, RunLifecycle
from benchmark.optim import lr_at
from benchmark.progress import StepBar, epoch_line, say
from benchmark.quality import label_free_quality
from benchmark.refresh import refresh_due, refresh_table, restore_table, table_state
from benchmark.run_result import RunResult
from benchmark.rundir import ReadOnlyRunDir, RunDir
from benchmark.tracking import SINGLE_RUN, Labels, Tracker

STOP_POLL_STEPS = 10


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
        "online": None if parts.online is None else parts.online.state(),
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
    if parts.online is not None:
        parts.online.restore(state["online"])
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
            _say_resuming(run_id, start_epoch, position)
        tracker = life.tracker = Tracker(run, config, run_id, labels=wandb_labels or SINGLE_RUN, enabled=ranks.is_main)
        _train_epochs(parts, run, tracker, run_id, start_epoch, clock, position, interrupt, epoch_callback)
        if not ranks.is_main:
            return {}  # rank 0 evaluates and writes the result
        life.result = result = _evaluate(parts, run_id, clock)
    return result.as_dict()  # written to result.json, status `done`, as the block ended


def _say_resuming(run_id: str, start_epoch: int, position: EpochPosition | None) -> None:
    where = f", step {position.step} of epoch {start_epoch + 1}" if position else ""
    print(f"run {run_id}: resuming after epoch {start_epoch}{where}", file=sys.stderr, flush=True)


def _evaluate(parts: RunParts, run_id: str, clock: TrainClock) -> RunResult:
    """The trained backbone's scores, and the run's result record."""
    config, data, device = parts.config, parts.data, parts.device
    eval_start = time.perf_counter()
    scores = evaluate_backbone(parts.method.backbone, data, device, config.knn_temperature, parts.amp_dtype)
    return RunResult(
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
        world_size=parts.ranks.world_size,
        online=parts.online.result() if parts.online is not None else {},
    )


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
            lr, classifier_lr = _step_lrs(parts, global_step, total_steps, warmup_steps)
            # progress after the step (DINO's schedules) and before it: solo-learn moves a momentum target
            # after step k with the tau of k - 1 steps done (BaseMomentumMethod.on_train_batch_end)
            loss_sum += step_fn(anchors, lr, (global_step + 1) / total_steps, classifier_lr, global_step / total_steps)
            bar.step()  # a host-side count: no device value is read
            if interrupt is not None and _stop_requested(parts, interrupt, i):
                here = EpochPosition(i + 1, order, loss_sum, carried + time.perf_counter() - started)
                run.save_checkpoint(_checkpoint_state(parts, run_id, epoch - 1, clock, here))
                raise RunInterrupted(f"interrupted in epoch {epoch} after step {i + 1}/{steps}; checkpoint saved")
        sums = torch.stack([loss_sum] + ([] if parts.online is None else [parts.online.loss_sum]))
        read = mean_over_ranks(sums).tolist()  # the one host sync of the epoch
        loss = read[0] / max(1, steps)
        elapsed = carried + time.perf_counter() - started
        clock.seconds += elapsed
        clock.views += (1 + config.positives) * steps * config.batch_size
        if not math.isfinite(loss):
            raise TrainingError(f"loss became {loss} in epoch {epoch} (lr {parts.optim['lr']:.3g}): the run diverged")
        metrics = _epoch_metrics(parts, epoch, loss, elapsed, clock, read[1] if parts.online is not None else None)
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


def _step_lrs(parts: RunParts, step: int, total_steps: int, warmup_steps: int) -> tuple[float, float | None]:
    """The step's lr and, with the online classifier, its own lr under the same schedule (None without)."""
    start = parts.optim["warmup_start_lr"]
    lr = lr_at(step, total_steps, warmup_steps, parts.optim["lr"], start)
    return lr, None if parts.online is None else lr_at(step, total_steps, warmup_steps, parts.online.lr, start)


def _epoch_metrics(
    parts: RunParts, epoch: int, loss: float, elapsed: float, clock: TrainClock, classifier_sum: float | None = None
) -> dict:
    """The epoch's line of metrics.jsonl: loss, lr and speed, the online evaluation when due (and the
    online classifier's loss, from its epoch sum, and its accuracies then and at the end), and the
    neighbour table's refresh when due (before the checkpoint, so that it holds the new table)."""
    config, steps = parts.config, parts.steps_per_epoch
    total_steps, warmup_steps = steps * config.epochs, parts.optim["warmup_epochs"] * steps
    # the epoch's last step's lr, also when a run stopped after that step resumes with no step of it left
    lr = lr_at(epoch * steps - 1, total_steps, warmup_steps, parts.optim["lr"], parts.optim["warmup_start_lr"])
    metrics = {
        "epoch": epoch,
        "loss": loss,
        "lr": lr,
        "images_per_s": (1 + config.positives) * steps * config.batch_size / elapsed,
        "epoch_seconds": elapsed,
    }
    evaluates = bool(config.eval_every) and epoch % config.eval_every == 0
    if evaluates and parts.ranks.is_main:
        metrics.update(_online_knn(parts))
    if parts.online is not None and classifier_sum is not None:
        metrics["online_class_loss"] = classifier_sum / max(1, steps)
        parts.online.loss_sum.zero_()
        if (evaluates or epoch == config.epochs) and parts.ranks.is_main:
            metrics.update(parts.online.evaluate(parts.method.backbone, parts.data, parts.device, epoch))
    if refresh_due(config, epoch):
        metrics.update(refresh_table(parts, epoch))
        clock.seconds += metrics["refresh_seconds"]
    return metrics


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
