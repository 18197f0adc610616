"""Progress that a person at a terminal and a job's log can both follow, at no cost to the device.

Training prints one line per epoch (rank 0, to stderr, which submitit and SLURM write to the job's
log) from the numbers the epoch end has anyway, so the loop's one host sync per epoch stays the only
one; on a terminal a step bar (tqdm) also counts steps, advanced by host-side counts. Long set-up
work (a prior's embedding, an autoencoder's training, a neighbour search) goes through `progress()`:
a bar on a terminal, elsewhere a line at each tenth of the work.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, Sized, TextIO, TypeVar

T = TypeVar("T")
TENTHS = 10  # lines per long piece of work in a log: one at each tenth


def interactive(stream: TextIO | None = None) -> bool:
    """Whether `stream` (default: stderr) is a terminal, where a bar can redraw in place."""
    stream = stream if stream is not None else sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or a stand-in stream
        return False


def clock(seconds: float) -> str:
    """H:MM:SS, as in an ETA."""
    whole = max(0, int(round(seconds)))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def say(line: str) -> None:
    """One line to stderr; on a terminal, printed above any bar on screen rather than through it."""
    if interactive():
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


def epoch_line(run_id: str, metrics: dict[str, Any], epochs: int, eta_seconds: float) -> str:
    """`run 1a2b3c4d5e6f epoch 12/200 loss 4.1234 lr 0.3 1,234 img/s eta 0:41:10`, plus the validation
    kNN accuracy on the epochs that measure it."""
    words = [
        f"run {run_id} epoch {metrics['epoch']}/{epochs}",
        f"loss {metrics['loss']:.4f}",
        f"lr {metrics['lr']:.4g}",
        f"{metrics['images_per_s']:,.0f} img/s",
    ]
    if metrics.get("val_knn_acc") is not None:
        words.append(f"val_knn {metrics['val_knn_acc']:.4f}")
    words.append(f"eta {clock(eta_seconds)}")
    return " ".join(words)


class StepBar:
    """A tqdm bar over a run's steps, on a terminal only (elsewhere every call does nothing).

    `step()` counts on the host: no device value is read, so the bar adds no host sync to a step.
    The loss and the speed appear at each epoch's end, where the loop has read them anyway."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool = True):
        self.bar = None
        if enabled and interactive():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def epoch_end(self, epoch: int, epochs: int, loss: float, images_per_s: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(epoch=f"{epoch}/{epochs}", loss=f"{loss:.4f}", img_s=f"{images_per_s:,.0f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress(items: Iterable[T], label: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Yields `items` and says how far it got: a tqdm bar on a terminal; elsewhere (a job log) a line
    after each tenth of `total` (default: len(items)) with the time spent and the time left."""
    if total is None:
        assert isinstance(items, Sized), "progress() needs total= for an iterable without a length"
        total = len(items)
    if interactive():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True)
        return
    started = time.perf_counter()
    shown = 0
    for done, item in enumerate(items, 1):
        yield item  # the caller's work on `item` happens here: the line below counts it as done
        tenth = done * TENTHS // max(1, total)
        if tenth > shown:
            shown = tenth
            elapsed = time.perf_counter() - started
            left = elapsed / done * max(0, total - done)
            say(
                f"{label}: {done:,}/{total:,} {unit} ({100 * done / max(1, total):.0f}%) "
                f"in {clock(elapsed)}, eta {clock(left)}"
            )
