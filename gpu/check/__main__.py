"""`python -m gpu.check` (what gpu/check.sh runs): the check (from a bundle with --from-bundle DIR), --summary, or
--bundle DIR."""

from __future__ import annotations

import sys

from gpu.check.check import prepare, run_check
from gpu.check.log import logged
from gpu.check.offline import use_bundle
from gpu.check.options import CheckError, parse_args
from gpu.check.summary import snapshot


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        if args.bundle is not None:
            from gpu.check.bundle import make_bundle  # needs `packaging`, which a node's bare Python may lack

            return make_bundle(args)
        if args.summary:
            snapshot(args.out.resolve(), args.work.resolve(), quiet=False)
            return 0
        if args.from_bundle is not None:
            use_bundle(args.from_bundle)
        check = prepare(args)
        with logged(check.out / "check.log"):
            return run_check(check)
    except CheckError as err:
        print(f"gpu-check: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpu-check: interrupted; the summary of what was measured: --summary", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
