"""`python -m versavid_r1.eval.convert BENCHMARK [flags] --out DATA_ROOT/BENCHMARK.jsonl`: a benchmark's files, as
released, into evaluation rows (one sub-command per benchmark of the paper's table; `--help` after a name
lists its flags). The suite reads `DATA_ROOT/<name>.jsonl`.

Prints how many rows were written, which were left out and which were written with a missing video (kept:
the evaluation counts them as unreadable; `--drop_missing` leaves them out). A folder that does not hold
the benchmark's files is one error line naming what was expected (exit 1).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .benchmarks import BENCHMARKS
from .benchmarks.layout import LayoutError
from .convert_cli import _finish


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m versavid_r1.eval.convert", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, bench in BENCHMARKS.items():
        sp = sub.add_parser(name, help=f"{bench.title}: {bench.download}",
                            description=f"{bench.title} -> evaluation rows. Files: {bench.download}. "
                                        f"Layout and scoring: {bench.source}.")
        bench.add_arguments(sp)
        sp.add_argument("--drop_missing", action="store_true",
                        help="leave out rows whose video is missing (default: keep and list them)")
        sp.add_argument("--out", required=True, help="output JSONL (the suite reads DATA_ROOT/<name>.jsonl)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        report = BENCHMARKS[args.benchmark].convert(args)
    except (LayoutError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _finish(report, args.out)


if __name__ == "__main__":
    sys.exit(main())
