"""The end of a sweep in W&B: its table (Markdown and CSV) and plots (PNG) as one artifact of the sweep,
logged by a run of job type `summary`, so the sweep's results sit next to its runs. Offline (the
default without an API key) it is written to local files for `wandb sync`. Like every W&B call here,
a failure prints a warning and changes nothing else."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path
from typing import TextIO

from benchmark.fileio import atomic_write_bytes

SUMMARY_DIR = ".summary"  # results/<sweep>/.summary/wandb/: a dot folder, never taken for a run
JOB_TYPE = "summary"
ARTIFACT_TYPE = "sweep-results"


def summary_files(sweep_dir: Path, metric: str = "linear_acc") -> tuple[list[Path], dict[str, int]]:
    """Write table-<metric>.md and .csv and the plots into the sweep folder (the files `gpsbench table
    --save` writes) and return them with the run counts; no files while no run is done."""
    from benchmark.plots import write_plots
    from benchmark.results import build_table, collect, to_csv, to_markdown

    frame, counts = collect(sweep_dir)
    if frame.empty:
        return [], counts
    table = build_table(frame, counts, metric)
    written = []
    for suffix, text in (("md", to_markdown(table) + "\n"), ("csv", to_csv(table))):
        path = Path(sweep_dir) / f"table-{metric}.{suffix}"
        atomic_write_bytes(path, text.encode())
        written.append(path)
    plots, _missing = write_plots(sweep_dir, metric)  # a plot the sweep has no data for is left out
    return written + plots, counts


def summary_mode(modes: set[str]) -> str:
    """The summary's W&B mode from its runs' modes: online if any run is, else offline if any is."""
    return next((mode for mode in ("online", "offline") if mode in modes), "disabled")


def summary_id(sweep_dir: Path, name: str) -> str:
    """One W&B run per sweep folder (a later summary of the same folder adds an artifact version)."""
    folder = hashlib.sha256(str(Path(sweep_dir).resolve()).encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '-', name)[:40]}-summary-{folder}"


def log_summary(sweep_dir: Path, wandb_settings, name: str, mode: str, out: TextIO) -> None:
    """Log the sweep's table and plots as the artifact `<sweep>-results` (nothing when W&B is disabled
    or no run is done)."""
    if mode == "disabled":
        return
    sweep_dir = Path(sweep_dir)
    try:
        files, counts = summary_files(sweep_dir)
        if not files:
            return
        import wandb

        run = wandb.init(
            project=wandb_settings.project,
            entity=wandb_settings.entity,
            job_type=JOB_TYPE,
            tags=[name[:64]],
            name=f"{name}-summary",
            id=summary_id(sweep_dir, name),
            resume="allow",
            dir=str(sweep_dir / SUMMARY_DIR),
            config={"sweep": name, "runs": counts},
            mode=mode,  # type: ignore[arg-type]  # one of wandb's modes, checked by the sweep file
            reinit="finish_previous",
        )
        artifact = wandb.Artifact(
            f"{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}-results",
            type=ARTIFACT_TYPE,
            description=f"sweep {name}: table (mean ± std over seeds) and plots",
            metadata=counts,
        )
        for path in files:
            artifact.add_file(str(path), name=path.name)
        run.log_artifact(artifact)
        run.finish()
    except Exception as err:  # noqa: BLE001 - the summary must never fail a sweep whose runs are done
        print(
            f"gpsbench: warning: the W&B summary failed ({type(err).__name__}: {err}); the runs and their "
            f"W&B runs are complete, `gpsbench table {sweep_dir} --save` writes the table and plots",
            file=sys.stderr,
        )
        return
    where = f" (offline files under {sweep_dir / SUMMARY_DIR / 'wandb'})" if mode == "offline" else ""
    print(f"W&B: {artifact.name} ({len(files)} files: table and plots) logged by run {run.name}{where}", file=out)
