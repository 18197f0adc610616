"""The command of the paper-style tables: `table`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmark.cli.common import Commands, print_notes
from benchmark.errors import ConfigError


def cmd_table(args: argparse.Namespace) -> int:
    from benchmark.published import REFERENCE, compare_paper, load_reference
    from benchmark.results import FORMATTERS, build_table, collect, prior_table

    folder = Path(args.folder)
    if not folder.is_dir():
        raise ConfigError(f"no sweep folder {str(folder)!r}")
    started = time.perf_counter()
    frame, counts = collect(folder, earlier=args.earlier)
    if frame.empty:
        raise ConfigError(
            f"{folder}: no done runs to tabulate ({counts['failed']} failed, {counts['corrupt']} "
            f"corrupt, {counts['missing']} missing); see gpsbench status {folder}"
        )
    split = lambda text: [axis.strip() for axis in text.split(",")] if text else None  # noqa: E731
    if args.kind == "priors":
        text = prior_table(frame, args.metric)
    else:
        from benchmark.compare import Comparison, Extras

        extras = Extras(
            Comparison.parse(args.compare_axis) if args.paired or args.compare_axis else None,
            split(args.aggregate) or [] if args.aggregate is not None else None,
            args.detect,
            args.ci,
        )
        rows, cols = split(args.rows), split(args.cols)
        table = build_table(frame, counts, args.metric, rows, cols, level=args.ci)
        text = "\n\n".join(
            [FORMATTERS[args.format](table)] + extras.sections(frame, counts, table, args.format, rows, cols)
        )
        if args.save:
            from benchmark.plots import write_plots

            for fmt, suffix in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
                (folder / f"table-{args.metric}.{suffix}").write_text(FORMATTERS[fmt](table) + "\n")
            written = [folder / f"table-{args.metric}.{s}" for s in ("md", "tex", "csv")]
            plots, notes = write_plots(folder, args.metric, level=args.ci, comparison=extras.comparison)
            print("wrote " + ", ".join(str(p) for p in written + plots), file=sys.stderr)
            for note in notes:
                print(f"gpsbench: note: {note}", file=sys.stderr)
    if args.compare == "paper":
        text += f"\n\nBeside the published numbers ({REFERENCE.name}), measured as each was:\n\n" + compare_paper(
            frame, load_reference()
        )
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    print(f"({len(frame)} runs collected and tabulated in {time.perf_counter() - started:.2f} s)", file=sys.stderr)
    print_notes(frame.attrs.get("notes", []))
    return 0


def add_table(commands: Commands) -> None:
    """table: the paper-style table of a sweep."""
    from benchmark.results import FORMATS, METRICS

    table = commands.add_parser("table", help="the paper-style table of a sweep (mean ± std over seeds)")
    table.add_argument("folder", help="the sweep's folder, e.g. results/digits")
    table.add_argument(
        "--metric",
        default="linear_acc",
        help=f"any numeric key of result.json: {', '.join(METRICS)}, rankme, alignment, uniformity, val_knn_acc, ...",
    )
    table.add_argument("--rows", help="comma-separated axes (default: method with its plain and GPS variants)")
    table.add_argument("--cols", help="comma-separated axes (default: dataset,aug)")
    table.add_argument("--format", default="markdown", choices=FORMATS)
    table.add_argument(
        "--kind",
        default="cells",
        choices=("cells", "priors"),
        help="priors: prior x dataset with prior_nn_agreement and the gain of GPS over plain SSL",
    )
    table.add_argument("--compare", choices=("paper",), help="add the paper's published numbers beside ours")
    add_comparison_options(table)
    table.add_argument("--out", help="write the table to this file instead of printing it")
    table.add_argument(
        "--save",
        action="store_true",
        help="also write table-<metric>.md/.tex/.csv and the plots (PNG) into the sweep folder",
    )
    table.add_argument(
        "--earlier",
        action="store_true",
        help="also tabulate runs of an earlier plan of this sweep, in rows of their own (plan=earlier)",
    )
    table.set_defaults(func=cmd_table)


def add_comparison_options(table) -> None:
    """table's options that compare: intervals, paired differences, aggregates, seeds needed."""
    table.add_argument(
        "--ci",
        nargs="?",
        type=float,
        const=0.95,
        metavar="LEVEL",
        help="t intervals of the mean over seeds (default 0.95) in place of ± std, also as the plots' error bars",
    )
    table.add_argument(
        "--paired",
        action="store_true",
        help="add each GPS cell minus its plain twin, paired by seed, with its t interval (bold: excludes zero)",
    )
    table.add_argument(
        "--compare-axis",
        metavar="AXIS=BASE",
        help="paired differences of each value of a grid axis against BASE instead (prior=none, positives=1)",
    )
    table.add_argument(
        "--aggregate",
        nargs="?",
        const="",
        metavar="AXES",
        help="interquartile mean and probability of improvement over cells, with stratified bootstrap "
        "intervals (of --compare-axis, else GPS vs plain); AXES (comma-separated) are kept apart",
    )
    table.add_argument(
        "--detect",
        type=float,
        metavar="D",
        help="add the seeds needed to detect a difference of D (points for an accuracy) with power 0.8",
    )
