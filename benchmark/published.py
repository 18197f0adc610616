"""Published numbers (results/reference/paper.csv) and a sweep set beside them, like with like.

Each row of the reference file says exactly where its number was read (`source`), whether that is
the paper itself or a named secondary text about it (`source_kind`: paper | secondary), which of its
columns were inferred rather than read there (`inferred`), and the result key measured the way the
number was (`metric`): the official GPS code reports solo-learn's online linear classifier at its best
epoch on the test split, so a published number is compared with `online_linear_acc_test_selected`,
never with the honest offline probe, which is shown beside it. A secondary row is labelled as such,
never as the paper's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark import shipped
from benchmark.errors import ConfigError
from benchmark.results import _sorted, with_variants
from benchmark.scores import score

REFERENCE = (shipped.folder("reference") or Path("results/reference")) / "paper.csv"  # checkout or wheel
COLUMNS = ("dataset", "aug", "method", "gps", "lr", "metric", "value", "source", "source_kind", "inferred", "note")
SOURCE_KINDS = ("paper", "secondary")
# the honest readings shown beside each published number, and what each column of the comparison is
HONEST = ("linear_acc", "val_online_linear_acc")
PROTOCOLS = {
    "online_linear_acc_test_selected": "solo-learn's online linear classifier on the training views, its best "
    "evaluated epoch on the test split until the references' early stopping: chosen on test, the official "
    "code's protocol, for comparison with published numbers only",
    "linear_acc": "logistic regression on frozen features of un-augmented images, L2 chosen on "
    "val, scored on test once (honest)",
    "val_online_linear_acc": "the online classifier trained on train without val, its last epoch on val: "
    "chosen on nothing (honest)",
}
IDENTITY_AXES = {"axis_seed", "axis_dataset", "axis_aug", "axis_method", "axis_prior"}


def load_reference(path: Path = REFERENCE) -> pd.DataFrame:
    """The reference rows, checked: every column present, a source for each row, a known source kind."""
    reference = pd.read_csv(path, comment="#", keep_default_na=False, na_values={"lr": [""], "value": [""]})
    missing = [c for c in COLUMNS if c not in reference.columns]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}; valid header: {','.join(COLUMNS)}")
    for i, row in reference.iterrows():
        if row["source_kind"] not in SOURCE_KINDS:
            raise ConfigError(
                f"{path}: row {i + 1} has source_kind {row['source_kind']!r}; valid: {', '.join(SOURCE_KINDS)}"
            )
        if not str(row["source"]).strip():
            raise ConfigError(f"{path}: row {i + 1} ({row['dataset']}, {row['method']}) has no source")
    reference["gps"] = reference["gps"].astype(str).str.lower() == "true"
    return reference


def compare_paper(frame: pd.DataFrame, reference: pd.DataFrame) -> str:
    """Every cell of ours (a variant at a dataset and augmentation, any other varying grid axis in its
    label) beside the published number for it, measured as that number was, with the difference, the
    honest readings beside it, and under the table what each column follows and each source."""
    frame = with_variants(frame)
    extra = [c for c in frame.columns if c.startswith("axis_") and c not in IDENTITY_AXES]
    keys = ["dataset", "aug", "variant", "method", "gps"]
    extra = [c for c in extra if frame.groupby(keys)[c].nunique(dropna=False).max() > 1]
    if "axis_lr" in frame and "axis_lr" not in extra:
        extra.append("axis_lr")
    cells = _sorted(frame.drop_duplicates(keys + extra)[keys + extra], ["dataset", "aug", "method", "gps", "variant"])
    sources: dict[str, int] = {}
    lines = [
        "| dataset | aug | variant | published | measured as published | difference | offline probe | online on val |",
        "| --- " * 8 + "|",
    ]
    metrics_used: list[str] = []
    for cell in cells.itertuples(index=False):
        values = cell._asdict()
        mine = frame
        for key in keys + extra:
            mine = mine[mine[key] == values[key]]
        group = frame
        for key in keys:
            group = group[group[key] == values[key]]
        varying = [c for c in extra if group[c].nunique(dropna=False) > 1]  # named where the cell has siblings
        label = values["variant"] + "".join(f", {c[5:]}={values[c]}" for c in varying)
        lr = float(values["axis_lr"]) if "axis_lr" in values else None
        row = _published(reference, values, lr)
        honest = " | ".join(_reading(mine, key) for key in HONEST)
        where = f"| {values['dataset']} | {values['aug']} | {label}"
        if row is None:
            lines.append(f"{where} | no published number | | | {honest} |")
            continue
        number = sources.setdefault(row["source"], len(sources) + 1)
        kind = "" if row["source_kind"] == "paper" else "secondary, "
        published = f"{row['value']:.2f} ({kind}[{number}])"
        metric = row["metric"]
        metrics_used.append(metric)
        if metric not in mine or mine[metric].isna().all():
            lines.append(f"{where} | {published} | not measured: {metric} (set online_linear: true) | | {honest} |")
            continue
        difference = score(metric).scaled(mine[metric].dropna().mean()) - row["value"]
        lines.append(f"{where} | {published} | {_reading(mine, metric)} | {difference:+.2f} | {honest} |")
    return "\n".join(lines + _footer(list(dict.fromkeys(metrics_used)), sources, reference))


def _footer(metrics: list[str], sources: dict[str, int], reference: pd.DataFrame) -> list[str]:
    """Under the table: which protocol each column follows, and each source with its kind, what was
    inferred rather than read there, and its note."""
    lines = ["", "Columns (mean ± std over seeds, in %):", "- published: the number where the source gives it"]
    for metric in metrics:
        lines.append(f"- measured as published: `{metric}`: {PROTOCOLS.get(metric, 'as the row names it')}")
    lines.append(f"- offline probe: `linear_acc`: {PROTOCOLS['linear_acc']}")
    lines.append(f"- online on val: `val_online_linear_acc`: {PROTOCOLS['val_online_linear_acc']}")
    if sources:
        lines += ["", "Sources:"]
    for source, number in sources.items():
        rows = reference[reference["source"] == source]
        kinds = sorted(set(rows["source_kind"]))
        inferred = sorted({part for text in rows["inferred"] for part in str(text).split(";") if part.strip()})
        lines.append(
            f"[{number}] {source} ({' and '.join(kinds)})"
            + (f"; inferred, not read there: {', '.join(inferred)}" if inferred else "")
            + "".join(f"; {note}" for note in dict.fromkeys(rows["note"]) if note)
        )
    return lines


def _published(reference: pd.DataFrame, cell: dict, lr: float | None) -> pd.Series | None:
    """The reference row of a cell: same dataset, augmentation, method and GPS or not; an lr-specific
    row only for that lr."""
    match = reference[
        (reference["dataset"] == cell["dataset"])
        & (reference["aug"] == cell["aug"])
        & (reference["method"] == cell["method"])
        & (reference["gps"] == bool(cell["gps"]))
    ]
    match = match[match["lr"].isna() | (match["lr"] == lr)] if lr is not None else match[match["lr"].isna()]
    if lr is not None and (match["lr"] == lr).any():
        match = match[match["lr"] == lr]
    return None if match.empty else match.iloc[0]


def _reading(runs: pd.DataFrame, metric: str) -> str:
    """mean ± std over the runs (the value alone for one run), or – where none measured it."""
    if metric not in runs or runs[metric].isna().all():
        return "–"
    values = runs[metric].dropna()
    chosen = score(metric)
    return chosen.text(values.mean()) + (f" ± {chosen.text(values.std())}" if len(values) > 1 else "")
