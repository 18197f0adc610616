"""The `gpsbench` command. Bad input is reported in one line with exit code 2, before any work; a run
that fails, a file that cannot be written and a run another process holds in one line with exit code 1;
an interrupted command exits with 128 + the signal (130 for Ctrl-C, 143 for a kill)."""

from __future__ import annotations

import argparse
import signal
import sys

from benchmark.cli import runs, sweeps, tables
from benchmark.cli.common import Parser, config_from_args
from benchmark.errors import ClusterError, ConfigError, StorageError, TrainingError

__all__ = ["build_parser", "config_from_args", "main", "one_line"]

# the commands in the order --help lists them
COMMANDS = (
    runs.add_train,
    runs.add_perf,
    runs.add_prior,
    sweeps.add_sweep,
    sweeps.add_status,
    sweeps.add_tune,
    tables.add_table,
    runs.add_data,
    runs.add_export,
    runs.add_recipes,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gpsbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmark.claim import RunBusy

    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit: the write fails and says so (EFBIG)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"gpsbench: error: {one_line(err)}", file=sys.stderr)
        return 2
    except TrainingError as err:  # the run's status.json holds the error and its traceback
        print(f"gpsbench: run failed: {one_line(err)}", file=sys.stderr)
        return 1
    except (StorageError, RunBusy, ClusterError) as err:
        print(f"gpsbench: error: {one_line(err)}", file=sys.stderr)
        return 1
    except OSError as err:  # a file to read or a folder to write that the system refused
        where = f" {err.filename}" if err.filename else ""
        print(f"gpsbench: error: cannot access{where}: {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        return 128 + int(getattr(err, "signum", signal.SIGINT))


def one_line(err: BaseException) -> str:
    """Problems listed on several lines (one per problem, see errors.Problems) stay as they are;
    anything else is one line."""
    text = str(err)
    listed = all(line.startswith("  ") for line in text.split("\n")[1:])  # a heading, then indented lines
    return text if listed else " ".join(text.split())
